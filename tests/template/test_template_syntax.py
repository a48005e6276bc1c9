"""OpenNebula template syntax: what oned's files and payloads look like, read and written."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onexen.template import Template, TemplateSyntaxError, Vector, dumps, parse, quote

# The shape of the defaults file OpenNebula's Xen add-on ships (vmm_exec_xen.conf).
SHIPPED_DEFAULTS = """\
#  Default configuration attributes for the Xen driver
#  (all domains will use these values as defaults)
#  Valid atributes:
#  - credit
#  - os [kernel,initrd,root,kernel_cmd,hvm]
#  - vcpu
#  - features [acpi, pae, apic, device_model, localtime]
#  - disk[driver]
#  - nic[model]
#  - raw

#VCPU   = 1
#OS     = [ kernel="/vmlinuz", initrd="/initrd.img", root="sda1", kernel_cmd="ro", hvm="yes" ]
#FEATURES = [ PAE = "no", ACPI = "yes", APIC = "yes" ]

CREDIT = 256
DISK   = [ driver = "raw:" ]
#RAW   = "data = \\"on_crash=destroy\\""
"""


def test_shipped_defaults_file_reads_with_upper_cased_keys() -> None:
    defaults = parse(SHIPPED_DEFAULTS)
    assert defaults.items() == (("CREDIT", "256"), ("DISK", Vector([("DRIVER", "raw:")])))
    assert defaults.get("credit") == "256"
    assert defaults.vector("disk") == Vector({"DRIVER": "raw:"})
    assert defaults.vector("Disk") == Vector({"driver": "raw:"})
    assert defaults.get("RAW") is None


def test_vectors_span_lines_and_keys_repeat_in_order() -> None:
    text = """
NAME = "vm one"
DISK = [
  IMAGE_ID = 3,
  TARGET   = "xvda" ]
DISK = [ TYPE = swap, SIZE = 1024, TARGET = xvdb ]
NIC=[NETWORK="private"]
"""
    template = parse(text)
    assert template.keys() == ["NAME", "DISK", "NIC"]
    assert [d["TARGET"] for d in template.vectors("DISK")] == ["xvda", "xvdb"]
    assert template.vectors("disk")[1] == Vector([("TYPE", "swap"), ("SIZE", "1024"), ("TARGET", "xvdb")])
    assert template.get("NAME") == "vm one"
    assert template.get_all("DISK") == template.vectors("DISK")
    assert template.strings("DISK") == []


def test_quoted_values_keep_escaped_quotes_newlines_and_other_backslashes() -> None:
    template = parse(
        'A = "say \\"hi\\""\nB = "two\nlines"\nC = "C:\\dir\\\\x"\nD = ""\nE =\nF = "#not a comment"\n'
    )
    assert template.get("A") == 'say "hi"'
    assert template.get("B") == "two\nlines"
    assert template.get("C") == "C:\\dir\\x"
    assert template.get("D") == ""
    assert template.get("E") == ""
    assert template.get("F") == "#not a comment"


def test_a_monitoring_line_reads_as_well_as_a_file() -> None:
    template = parse("NAME=one-42 VM_NAME=one-42 STATE=a CPU=0.3 MEMORY=1048576 DISK_SIZE=[ID=0,SIZE=10]\n")
    assert template.get("STATE") == "a"
    assert template.get("MEMORY") == "1048576"
    assert template.vector("DISK_SIZE") == Vector([("ID", "0"), ("SIZE", "10")])


def test_crlf_line_ends_and_comments_between_vector_items() -> None:
    template = parse('A = 1\r\nV = [\r\n  X = "1", # first\r\n  Y = 2 ]\r\n')
    assert template.get("A") == "1"
    assert template.vector("V") == Vector([("X", "1"), ("Y", "2")])


def test_a_vector_sub_key_given_twice_keeps_the_first_value_as_oned() -> None:
    assert parse("V = [ A = 1, a = 2 ]").vector("V") == Vector([("A", "1")])


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("A", 1, 2, "expected '=' after A"),
        ("A = 1\nB = [ X = 1", 2, 12, "vector B is never closed"),
        ('A = 1\n\nB = "open', 3, 5, "quoted value of B is never closed"),
        ('A = "x"B = 1', 1, 8, "after the value of A"),
        ("= 1", 1, 1, "expected an attribute name"),
        ("V = [ X = [ ] ]", 1, 11, "cannot hold another vector"),
        ("V = [ X = 1 Y = 2 ]", 1, 13, "expected ',' or ']' in vector V"),
        ("V = [ , ]", 1, 7, "a key inside vector V"),
        ("A = 1 2", 1, 8, "expected '=' after 2"),
        ("A-B = 1", 1, 2, "expected '=' after A"),
    ],
)
def test_syntax_errors_name_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert words in caught.value.message
    assert str(caught.value).startswith(f"line {line}, column {column}: ")


def test_writer_quotes_every_value_and_lays_vectors_out_one_key_a_line() -> None:
    template = Template([("name", 'a "b"'), ("DISK", Vector([("target", "xvda"), ("DRIVER", "raw:")]))])
    assert dumps(template) == 'NAME = "a \\"b\\""\nDISK = [\n  TARGET = "xvda",\n  DRIVER = "raw:" ]\n'
    assert dumps(template, inline=True) == 'NAME = "a \\"b\\"" DISK = [ TARGET = "xvda", DRIVER = "raw:" ]'
    assert dumps(Template([("V", Vector())])) == "V = [ ]\n"
    assert quote("back\\slash") == '"back\\\\slash"'


def test_writer_refuses_a_key_the_syntax_cannot_carry() -> None:
    with pytest.raises(ValueError, match="cannot be a template key"):
        dumps(Template([("BAD KEY", "x")]))
    with pytest.raises(ValueError, match="cannot be a template key"):
        dumps(Template([("V", Vector([("A=B", "x")]))]))


def test_templates_and_vectors_are_values() -> None:
    assert parse("A = 1\nB = 2") == parse("a=1 b=2")
    assert parse("A = 1\nB = 2") != parse("B = 2\nA = 1")
    assert Vector([("A", "1"), ("B", "2")]) != Vector([("B", "2"), ("A", "1")])
    assert hash(parse("V=[A=1]")) == hash(parse("v = [ a = 1 ]"))
    vector = parse("V=[A=1]").vector("V")
    assert vector is not None
    assert "v" in parse("V=[A=1]") and "a" in vector and "b" not in vector
    assert vector.get("missing", "x") == "x" and vector.get("a") == "1" and vector.get_exact("a") is None


_keys = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
_values = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
_vectors = st.lists(st.tuples(_keys, _values), max_size=5).map(Vector)
_templates = st.lists(st.tuples(_keys, st.one_of(_values, _vectors)), max_size=8).map(Template)


@settings(max_examples=100, deadline=None)
@given(_templates)
def test_any_template_round_trips_through_the_writer(template: Template) -> None:
    assert parse(dumps(template)) == template
    assert parse(dumps(template, inline=True)) == template


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from('AB=[],"#\\ \n\tx1_'), max_size=30))
def test_any_text_either_parses_or_names_a_position_inside_it(text: str) -> None:
    try:
        template = parse(text)
    except TemplateSyntaxError as exc:
        assert 1 <= exc.line <= text.count("\n") + 1
        assert exc.column >= 1
    else:
        assert parse(dumps(template)) == template
