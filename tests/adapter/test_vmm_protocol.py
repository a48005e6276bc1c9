"""The VM_MAD protocol's pure parts: request lines, replies, the driver message, stderr, deployment files."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.common.lineio import one_line
from adapter.common.options import split_arguments
from adapter.scripted_vm import OnedVm
from adapter.vmm import deployment, protocol
from adapter.vmm.message import MessageError, read_message
from adapter.vmm.protocol import Control, Malformed, Request
from adapter.vmm.scripts import error_block, log_lines
from adapter.vmm.tm import parse_tm_commands
from onexen.runtime.errors import InvalidArgument


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------------------- lines in


def test_requests_parse_by_whitespace_in_both_eras() -> None:
    assert protocol.parse_line("DEPLOY 42 QUJD") == Request("DEPLOY", 42, "QUJD")
    # 6.x writes an empty status field: two spaces after the action.
    assert protocol.parse_line("DEPLOY  42 QUJD\r") == Request("DEPLOY", 42, "QUJD")
    assert protocol.parse_line("DRIVER_CANCEL  42 ") == Control("DRIVER_CANCEL", 42)
    assert protocol.parse_line("INIT") == Control("INIT")
    assert protocol.parse_line("FINALIZE") == Control("FINALIZE")
    assert protocol.parse_line("   ") is None


@pytest.mark.parametrize(
    ("line", "action", "vm_id"),
    [
        ("DEPLOY 42", "DEPLOY", 42),  # no payload: answerable
        ("DEPLOY 42 a b", "DEPLOY", 42),  # extra fields
        ("DEPLOY x QUJD", "DEPLOY", None),  # no id: LOG only
        ("deploy 42 QUJD", None, None),  # not an action token
        ("\x00\x01 7", None, None),
        ("DRIVER_CANCEL", None, None),
    ],
)
def test_malformed_lines_say_what_can_still_be_answered(
    line: str, action: str | None, vm_id: int | None
) -> None:
    parsed = protocol.parse_line(line)
    assert isinstance(parsed, Malformed)
    assert (parsed.action, parsed.vm_id) == (action, vm_id)
    assert parsed.why and "\n" not in parsed.why


def test_payload_decoding_refuses_bad_base64_and_non_utf8() -> None:
    assert protocol.decode_payload(b64("<x/>")) == "<x/>"
    with pytest.raises(ValueError, match="base64"):
        protocol.decode_payload("not base64!")
    with pytest.raises(ValueError, match="UTF-8"):
        protocol.decode_payload(base64.b64encode(b"\xff\xfe").decode())


@given(st.text())
def test_no_line_makes_the_parser_raise(line: str) -> None:
    protocol.parse_line(line)


# ---------------------------------------------------------------------------- lines out


def test_replies_and_logs_are_one_line_and_never_read_as_no_info() -> None:
    assert protocol.reply_line("DEPLOY", "SUCCESS", 42, "one-42") == "DEPLOY SUCCESS 42 one-42"
    assert protocol.reply_line("SHUTDOWN", "SUCCESS", 42) == "SHUTDOWN SUCCESS 42 -"
    line = protocol.reply_line("DEPLOY", "FAILURE", 42, "xl create failed:\nlibxl: error\n")
    assert line == "DEPLOY FAILURE 42 xl create failed: libxl: error"
    # oned drops an info starting with "-" (spec §1.5).
    assert (
        protocol.reply_line("DEPLOY", "FAILURE", 42, "-w 5 timed out")
        == "DEPLOY FAILURE 42 error: -w 5 timed out"
    )
    assert protocol.reply_line("DEPLOY", "FAILURE", 42, "") == "DEPLOY FAILURE 42 -"
    assert len(protocol.reply_line("DEPLOY", "FAILURE", 1, "x" * 10_000)) < protocol.MAX_INFO_CHARS + 30
    assert protocol.log_line("I", 42, 'pre: Executed\t"brctl"') == 'LOG I 42 pre: Executed "brctl"'
    assert protocol.log_line("E", None, "bad line") == "LOG E - bad line"
    assert one_line("a\r\nb\x1bc") == "a b c"


def test_arguments_arrive_as_one_element_and_are_split() -> None:
    assert split_arguments(["-t 15 -r 0 xen"]) == ["-t", "15", "-r", "0", "xen"]
    assert split_arguments(["-t", "15", "xen"]) == ["-t", "15", "xen"]
    assert split_arguments(["--log-file '/tmp/a b' xen"]) == ["--log-file", "/tmp/a b", "xen"]
    assert split_arguments(["-t 15 'xen"]) == ["-t", "15", "'xen"]
    assert split_arguments([""]) == []


# ---------------------------------------------------------------------------- the driver message


def test_driver_message_fields_and_vm_parts(tmp_path: Path) -> None:
    vm = OnedVm(42, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")
    vm.add_nic(vn_mad="802.1Q")
    vm.add_nic(vn_mad="802.1Q")
    message = read_message(vm.deploy("xml"))
    assert message.host == "xen1" and message.migr_host == "" and message.deploy_id == ""
    assert message.local_deployment_file == str(vm.local_deployment_file)
    assert message.remote_deployment_file == f"{tmp_path}/ds/0/42/deployment.0"
    assert message.tm_command.startswith("CONTEXT ssh  xen1:")
    assert message.vm_id == 42 and message.history is not None and message.history.ds_id == "0"
    assert message.network_drivers() == ["dummy", "802.1Q"]
    assert message.vm_xml.startswith("<VM>") and message.vm_xml.endswith("</VM>")

    vm.commit()
    attach = read_message(vm.attach_disk("xvdc"))
    disk = attach.attaching_disk()
    assert disk is not None and disk.get("TARGET") == "xvdc"
    assert attach.tm_command.startswith("MKIMAGE ssh 16 raw xen1:") and attach.tm_command_rollback.startswith(
        "DELETE"
    )


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("<VMM_DRIVER_ACTION_DATA><HOST>x</HOST>", "well-formed"),
        ("<OTHER/>", "root element"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><VMM_DRIVER_ACTION_DATA/>', "DTD"),
    ],
)
def test_unreadable_messages_say_why(text: str, why: str) -> None:
    with pytest.raises(MessageError, match=why):
        read_message(text)


# ---------------------------------------------------------------------------- scripts' stderr, TM commands


def test_stderr_becomes_log_lines_and_the_marked_error_the_info() -> None:
    stderr = (
        'INFO: pre: Executed "sudo brctl addbr br0".\n'
        "DEBUG: checking\n"
        "ERROR MESSAGE --8<------\n"
        "Cannot create bridge\n"
        "br0: exists\n"
        "ERROR MESSAGE ------>8--\n"
        "plain line\n"
    )
    assert error_block(stderr) == "Cannot create bridge br0: exists"
    assert list(log_lines(stderr)) == [
        ("I", 'pre: Executed "sudo brctl addbr br0".'),
        ("D", "checking"),
        ("E", "Cannot create bridge"),
        ("E", "br0: exists"),
        ("I", "plain line"),
    ]
    assert error_block("nothing marked") == ""


def test_tm_commands_one_per_line_and_no_path_tricks() -> None:
    commands = parse_tm_commands("DELETE ssh xen1:/ds/0/7/disk.0 7 1\n\nDELETE ssh xen1:/ds/0/7 7 0\n")
    assert [(c.action, c.tm_mad, c.args) for c in commands] == [
        ("DELETE", "ssh", ("xen1:/ds/0/7/disk.0", "7", "1")),
        ("DELETE", "ssh", ("xen1:/ds/0/7", "7", "0")),
    ]
    for bad in ("CONTEXT ../../bin x", "CONTEXT", "../x ssh a"):
        with pytest.raises(InvalidArgument):
            parse_tm_commands(bad)


# ---------------------------------------------------------------------------- deployment files


def test_deployment_kind_name_and_weight() -> None:
    assert deployment.content_kind("  \n<VM/>", "auto") == "xml"
    assert deployment.content_kind("name = 'one-1'", "auto") == "xen"
    assert deployment.content_kind("<VM/>", "xen") == "xen"
    xen = "name = 'one-42'\n#O CPU_CREDITS = 128\nmemory = 64\n"
    assert deployment.xl_domain_name(xen) == "one-42"
    assert deployment.xl_credit_weight(xen) == 128
    assert deployment.xl_credit_weight(xen + "cpu_weight = 5\n") == 0  # xl create sets it
    assert deployment.xl_credit_weight("#O CPU_CREDITS = 999999\n") == 65535


def test_datastore_location_comes_from_the_remote_deployment_file() -> None:
    path = "/var/lib/one//datastores/0/42/deployment.3"
    assert deployment.datastore_location(path, 42, "0") == "/var/lib/one//datastores"
    assert deployment.datastore_location(path, 43, "0") is None
    assert deployment.datastore_location(path, 42, "100") is None
    assert deployment.datastore_location("deployment.0", 42, "") is None
    defaults = 'CREDIT = 256\nDISK = [ driver = "raw:" ]'
    assert deployment.defaults_for(defaults, "/srv/ds").endswith('\nDATASTORE_LOCATION = "/srv/ds"\n')
    own = defaults + '\nDATASTORE_LOCATION = "/other"\n'
    assert deployment.defaults_for(own, "/srv/ds") == own
    assert deployment.defaults_for(defaults, None) == defaults
