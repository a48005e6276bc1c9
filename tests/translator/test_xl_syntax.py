"""The xl config reader and the escaping rules, against the real parser."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from translator_helpers import b_info, xl_json, xl_returncode

from services.translator.xlconfig import (
    DiskSpec,
    DomainConfig,
    UnrepresentableValue,
    VifSpec,
    VncSpec,
    disk_spec,
    disk_target_problem,
    render,
    spec_field_problem,
    vif_spec,
    xl_string,
)
from services.translator.xlreader import XlSetting, XlSyntaxError, effective, read

BASE = 'name = "x"\ntype = "pv"\nkernel = "/k"\nmemory = 128\n'
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- the reader ----------------------------------------------------------------------------


def test_reader_values_and_operators() -> None:
    text = 'a = 1; b = \'x\\\'y\'\nc = [ "p",\n  [ 0x1f, ], ]\n# note\nd = "s"\nd += "t"\nc += ["q"]\n'
    found = read(text)
    assert found[0] == XlSetting("a", "1", False, 1)
    assert effective(found) == {"a": "1", "b": "x'y", "c": ("p", ("0x1f",), "q"), "d": "st"}


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a = 1 b = 2\n", 1, 7),
        ("a = [ , ]\n", 1, 7),
        ("a =\n1\n", 1, 4),
        ("a = -1\n", 1, 5),
        ("a = 'x\n", 1, 5),
        ("ok = 1\n# trailing comment", 2, 1),
        ('a = "x"\r\n', 1, 8),
        ('a = "\\q"\n', 1, 5),
        ('a = "x\x00"\n', 1, 7),
        ('a = "s"\na += [1]\n', 2, 1),
    ],
)
def test_reader_refuses_what_libxlu_refuses(text: str, line: int, column: int) -> None:
    with pytest.raises(XlSyntaxError) as caught:
        effective(read(text))
    assert (caught.value.line, caught.value.column) == (line, column)
    if "\x00" not in text:
        assert xl_returncode(BASE + text) != 0


def test_reader_is_stricter_than_libxlu_where_libxlu_loses_data() -> None:
    # libxlu accepts an octal escape but drops the character, and forgives a stray
    # character on a last line without a new line: both are refused here.
    for text in ('a = "\\101"\n', "a = 1\n-"):
        assert xl_returncode(BASE + text) == 0
        with pytest.raises(XlSyntaxError):
            read(text)


# Vocabulary of a config that only uses unknown names, so the only way xl can
# fail is syntax: the reader must accept exactly what xl accepts. The text ends
# with a new line, as every RAW section does once appended.
_TOKENS = st.sampled_from(
    [
        "zz_a",
        "zz_b",
        "zz_a ",
        " = ",
        "=",
        "+=",
        "+ =",
        "[",
        "]",
        ",",
        ";",
        "\n",
        "\n",
        "# c\n",
        "#",
        "'s'",
        '"d"',
        '"e\\"q"',
        '"bad\\q"',
        "'\\''",
        '"\\n\\t"',
        "'open",
        "1",
        "0x1f",
        "1a",
        "-",
        ".",
        ":",
        "Zz",
        "\t",
        "\r",
    ]
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_TOKENS, max_size=12).map("".join))
def test_reader_accepts_exactly_what_xl_accepts(soup: str) -> None:
    text = BASE + soup + "\n"
    try:
        effective(read(text))
        mine = 0
    except XlSyntaxError:
        mine = 1
    assert (xl_returncode(text) != 0) == bool(mine), repr(soup)


# ---- escaping ------------------------------------------------------------------------------

_ANY_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=500, deadline=None)
@given(_ANY_TEXT)
def test_any_string_without_nul_survives_as_an_xl_string(value: str) -> None:
    assert effective(read(f"v = {xl_string(value)}\n")) == {"v": value}


@FAST
@given(_ANY_TEXT.filter(bool))
def test_xl_reads_an_xl_string_back_unchanged(value: str) -> None:
    assert b_info(xl_json(BASE + f"extra = {xl_string(value)}\n"))["cmdline"] == value


def test_nul_cannot_be_written() -> None:
    with pytest.raises(UnrepresentableValue):
        xl_string("a\x00b")


_PATHS = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40).filter(
    lambda p: disk_target_problem(p) is None
)


@FAST
@given(_PATHS)
def test_a_disk_path_survives_target_last(path: str) -> None:
    spec = disk_spec(DiskSpec(target=path, vdev="xvda"))
    assert xl_json(BASE + f"disk = [ {xl_string(spec)} ]\n")["disks"][0]["pdev_path"] == path


@pytest.mark.parametrize(("path", "problem"), [("", "empty"), ("/a\nb", "control"), ("/a,", "comma")])
def test_disk_paths_that_cannot_be_written(path: str, problem: str) -> None:
    assert problem in (disk_target_problem(path) or "")
    with pytest.raises(UnrepresentableValue):
        disk_spec(DiskSpec(target=path, vdev="xvda"))


_FIELDS = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=30).filter(
    lambda v: spec_field_problem(v) is None
)


@FAST
@given(_FIELDS)
def test_a_vif_field_without_a_comma_survives(value: str) -> None:
    spec = vif_spec(VifSpec(bridge=value, script=value))
    nic = xl_json(BASE + f"vif = [ {xl_string(spec)} ]\n")["nics"][0]
    assert (nic["bridge"], nic["script"]) == (value, value)


def test_spec_fields_refuse_commas_and_control_characters() -> None:
    assert "comma" in (spec_field_problem("a,b") or "")
    assert "control" in (spec_field_problem("a\tb") or "")
    assert spec_field_problem("") == "is empty"
    with pytest.raises(UnrepresentableValue):
        vif_spec(VifSpec(bridge="br0,mac=1"))
    with pytest.raises(UnrepresentableValue):
        render(DomainConfig(name="x", type="pvh", memory=1, vnc=VncSpec(passwd="a,b")))
    with pytest.raises(UnrepresentableValue):
        disk_spec(DiskSpec(target="/x", vdev="xvda a"))


def test_render_writes_settings_xl_reads() -> None:
    config = DomainConfig(
        name='one-"1"',
        type="pvh",
        memory=64,
        kernel="/k",
        disks=(DiskSpec("/d", "xvda", format="qcow2", access="ro", backendtype=None, script="block-x"),),
        vifs=(VifSpec(type="vif", mac="00:16:3e:00:00:01"),),
        vnc=VncSpec(listen="0.0.0.0", display=3, passwd="p", keymap="de"),
        raw=("on_crash = 'preserve'",),
    )
    doc = xl_json(render(config))
    assert doc["c_info"]["name"] == 'one-"1"'
    assert doc["disks"] == [{"pdev_path": "/d", "vdev": "xvda", "script": "block-x", "format": "qcow2"}]
    assert doc["vfbs"][0]["keymap"] == "de"
    assert doc["on_crash"] == "preserve"
