"""Each action's pipeline against fakes: the steps in upstream's order, fail actions, no-fail
steps, retries, and the reply a user reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_fakes import World, settings, world

from adapter.scripted_vm import OnedVm
from adapter.vmm.actions import ActionRun, Reply, Settings, disk_prefix
from adapter.vmm.message import Device, read_message
from onexen.runtime.errors import CommandFailed, FieldViolation, InvalidArgument, NotFound, Unavailable
from onexen.v1 import executor_pb2


@pytest.fixture
def vm(tmp_path: Path) -> OnedVm:
    return OnedVm(42, "xen1", datastores=tmp_path / "ds", vms_dir=tmp_path / "vms")


async def run(w: World, action: str, xml: str, config: Settings | None = None) -> Reply:
    message = read_message(xml)
    return await ActionRun(action, 42, message, w.ports, config or settings(), w.log).run()


def deployed(vm: OnedVm) -> OnedVm:
    vm.deploy()
    vm.commit()
    return vm


# ---------------------------------------------------------------------------- DEPLOY


async def test_deploy_translates_then_context_pre_deploy_post(vm: OnedVm) -> None:
    w = world()
    reply = await run(w, "DEPLOY", vm.deploy("xml"))
    assert reply == Reply("SUCCESS", "one-42")
    assert w.steps() == ["translate", "tm:context", "vnm:dummy/pre@xen1", "deploy", "vnm:dummy/post@xen1"]
    _, translate = w.translator.calls[0]
    assert translate.vm_xml == vm.local_deployment_file.read_text()
    # DATASTORE_LOCATION from REMOTE_DEPLOYMENT_FILE, for 5.x+ VMs whose history lacks it.
    assert translate.defaults.endswith(f'DATASTORE_LOCATION = "{vm.datastores}"\n')
    request = w.executor.calls[3][1]
    assert request.remote_path == vm.remote_deployment_file and request.host == "xen1" and request.vm_id == 42
    assert request.cpu_weight == 0  # the config sets cpu_weight itself
    assert w.executor.calls[4][1].argument == "one-42"  # post gets the deploy id
    assert "Successfully execute virtualization driver operation: deploy." in w.texts("I")
    assert "Successfully execute network driver operation: post." in w.texts("I")
    assert 'pre: Executed "brctl".' in w.texts("I")  # the vnm script's own INFO line


async def test_deploy_of_an_xl_config_uses_it_as_it_is(vm: OnedVm) -> None:
    w = world()
    reply = await run(w, "DEPLOY", vm.deploy("xen"))
    assert reply == Reply("SUCCESS", "one-42")
    assert "translate" not in w.steps()
    request = next(r for name, r in w.executor.calls if name == "deploy")
    assert request.config == vm.xen_config()
    assert request.cpu_weight == 26  # from XenDriver's "#O CPU_CREDITS = 26"


async def test_deploy_type_option_overrides_the_guess(vm: OnedVm) -> None:
    w = world()
    await run(w, "DEPLOY", vm.deploy("xen"), settings(deploy_type="xml"))
    assert w.steps()[0] == "translate"


async def test_deploy_failure_cleans_the_network_and_reports_the_host_error(vm: OnedVm) -> None:
    w = world()
    w.executor.failures["deploy"] = CommandFailed(
        "xl create of one-42 failed on Xen host xen1 (exit 3): libxl: error: cannot allocate memory",
        host="xen1",
        command="sudo xl create /ds/0/42/deployment.0",
        exit_code=3,
        stderr="Parsing config\nlibxl: error: cannot allocate memory\n",
    )
    reply = await run(w, "DEPLOY", vm.deploy())
    assert reply.result == "FAILURE"
    assert (
        reply.info
        == "xl create of one-42 failed on Xen host xen1 (exit 3): libxl: error: cannot allocate memory"
    )
    assert w.steps()[-2:] == ["deploy", "vnm:dummy/clean@xen1"]
    assert "Failed to execute virtualization driver operation: deploy." in w.texts("E")
    assert "deploy: libxl: error: cannot allocate memory" in w.texts("E")


async def test_deploy_post_failure_destroys_the_new_domain(vm: OnedVm) -> None:
    w = world()
    w.executor.failures["vnm:dummy/post@xen1"] = CommandFailed(
        "network step dummy/post failed",
        host="xen1",
        command="post",
        exit_code=1,
        stderr="ERROR MESSAGE --8<------\nno such bridge br7\nERROR MESSAGE ------>8--\n",
    )
    reply = await run(w, "DEPLOY", vm.deploy())
    assert reply == Reply("FAILURE", "dummy: no such bridge br7")
    assert w.steps()[-3:] == ["vnm:dummy/post@xen1", "cancel", "vnm:dummy/clean@xen1"]
    assert w.executor.calls[-2][1].domain == "one-42"


async def test_deploy_without_a_deployment_file_fails_at_once(vm: OnedVm) -> None:
    w = world()
    xml = vm.deploy()
    vm.local_deployment_file.unlink()
    reply = await run(w, "DEPLOY", xml)
    assert reply.result == "FAILURE" and reply.info.startswith(
        f"Cannot open deployment file {vm.local_deployment_file}"
    )
    assert w.steps() == []


async def test_a_template_the_translator_refuses_is_one_clear_line(vm: OnedVm) -> None:
    w = world()
    w.translator.failures["translate"] = InvalidArgument(
        "TEMPLATE/DISK[1]/DRIVER: 'vmdk' is not a disk format xl knows",
        [
            FieldViolation("TEMPLATE/DISK[1]/DRIVER", "'vmdk' is not a disk format xl knows"),
            FieldViolation("TEMPLATE/MEMORY", "is not a number"),
        ],
    )
    reply = await run(w, "DEPLOY", vm.deploy())
    assert reply.result == "FAILURE"
    assert reply.info == (
        "the VM template cannot run on Xen: TEMPLATE/DISK[1]/DRIVER: 'vmdk' is not a disk format xl knows;"
        " TEMPLATE/MEMORY: is not a number"
    )
    assert w.steps() == ["translate"]


async def test_retries_only_what_never_reached_a_host(vm: OnedVm) -> None:
    w = world()
    w.executor.failures["deploy"] = Unavailable("cannot reach Xen host xen1", reason="HOST_UNREACHABLE")
    reply = await run(w, "DEPLOY", vm.deploy(), settings(retries=2))
    assert reply.result == "FAILURE" and w.steps().count("deploy") == 3
    assert sum("retry" in t for t in w.texts("I")) == 2

    w = world()
    w.executor.failures["deploy"] = Unavailable(
        "connection lost while running xl create", reason="CONNECTION_LOST"
    )
    await run(w, "DEPLOY", vm.deploy(), settings(retries=2))
    assert w.steps().count("deploy") == 1  # it may have run: never twice


# ---------------------------------------------------------------------------- power, save, migrate


async def test_shutdown_cancel_save_then_clean(vm: OnedVm) -> None:
    deployed(vm)
    for action, xml, executor_step in (
        ("SHUTDOWN", vm.shutdown(), "shutdown"),
        ("CANCEL", vm.cancel(), "cancel"),
        ("SAVE", vm.save(), "save"),
    ):
        w = world()
        assert await run(w, action, xml, settings(shutdown_timeout=7)) == Reply("SUCCESS", "-")
        assert w.steps() == [executor_step, "vnm:dummy/clean@xen1"]
        request = w.executor.calls[0][1]
        assert request.domain == "one-42"
        if action == "SHUTDOWN":
            assert request.timeout_seconds == 7
        if action == "SAVE":
            assert request.checkpoint_path == vm.checkpoint


async def test_restore_context_pre_restore_post(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "RESTORE", vm.restore())
    assert reply == Reply("SUCCESS", "-")
    assert w.steps()[-4:] == ["tm:context", "vnm:dummy/pre@xen1", "restore", "vnm:dummy/post@xen1"]


async def test_migrate_steps_run_on_the_right_hosts(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "MIGRATE", vm.migrate("xen2"))
    assert reply == Reply("SUCCESS", "-")
    assert w.steps() == [
        "tm:premigrate",
        "vnm:dummy/pre@xen2",
        "migrate",
        "vnm:dummy/clean@xen1",
        "vnm:dummy/post@xen2",
        "tm:postmigrate",
    ]
    migrate = w.executor.calls[2][1]
    assert (migrate.host, migrate.destination_host, migrate.domain) == ("xen1", "xen2", "one-42")
    tm_mad, args, stdin = w.tm.calls[0][1]
    assert tm_mad == "ssh" and args[:2] == ["xen1", "xen2"] and stdin  # the VM, base64, on stdin


async def test_failed_migration_runs_failmigrate_and_reports(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    w.executor.failures["migrate"] = CommandFailed(
        "migration of one-42 from Xen host xen1 to xen2 failed (exit 1): migration target refused",
        host="xen1",
        command="xl migrate",
        exit_code=1,
        stderr="migration target refused",
    )
    reply = await run(w, "MIGRATE", vm.migrate("xen2"))
    assert reply.result == "FAILURE" and "migration target refused" in reply.info
    assert w.steps() == ["tm:premigrate", "vnm:dummy/pre@xen2", "migrate", "tm:failmigrate"]


async def test_reboot_and_reset(vm: OnedVm) -> None:
    deployed(vm)
    for action, xml in (("REBOOT", vm.reboot()), ("RESET", vm.reset())):
        w = world()
        assert await run(w, action, xml) == Reply("SUCCESS", "-")
        assert w.steps() == [action.lower()]


async def test_missing_deploy_id_is_refused_before_anything_runs(vm: OnedVm) -> None:
    w = world()
    reply = await run(w, "SHUTDOWN", vm.shutdown())  # never deployed: <DEPLOY_ID/>
    assert reply == Reply.failure("Cannot perform SHUTDOWN, expecting DEPLOY_ID in the driver message")
    assert w.steps() == []


# ---------------------------------------------------------------------------- devices


async def test_attach_disk_prolog_then_attach_and_rollback_on_failure(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "ATTACHDISK", vm.attach_disk("xvdc"))
    assert reply == Reply("SUCCESS", "-")
    assert w.steps() == ["tm:mkimage", "attach_disk"]
    request = w.executor.calls[1][1]
    assert (request.target, request.source_path) == ("xvdc", f"{vm.system_dir}/disk.2")
    assert not request.readonly and not request.cdrom and request.driver == ""

    w = world()
    w.executor.failures["attach_disk"] = NotFound("no domain one-42 on Xen host xen1")
    reply = await run(w, "ATTACHDISK", vm.attach_disk("xvdd"))
    assert reply == Reply.failure("no domain one-42 on Xen host xen1")
    assert w.steps() == ["tm:mkimage", "attach_disk", "tm:delete"]


async def test_detach_disk_then_epilog(vm: OnedVm) -> None:
    deployed(vm)
    vm.attach_disk("xvdc")
    vm.commit()
    w = world()
    assert await run(w, "DETACHDISK", vm.detach_disk("xvdc")) == Reply("SUCCESS", "-")
    assert w.steps() == ["detach_disk", "tm:delete"]


def test_disk_prefix_rules() -> None:
    assert disk_prefix(Device("DISK", {"DRIVER": "raw:"})) == "raw"
    assert disk_prefix(Device("DISK", {"DRIVER": "tap2:tapdisk:aio"})) == "tap2:tapdisk:aio"
    assert disk_prefix(Device("DISK", {"TYPE": "BLOCK"})) == "phy"
    assert disk_prefix(Device("DISK", {"TYPE": "FILE"})) == ""


async def test_attach_nic_pre_attach_post_context(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "ATTACHNIC", vm.attach_nic(mac="02:00:0A:00:00:99", bridge="br1"))
    assert reply == Reply("SUCCESS", "-")
    assert w.steps() == ["vnm:dummy/pre@xen1", "attach_nic", "vnm:dummy/post@xen1", "tm:context"]
    request = w.executor.calls[1][1]
    assert (request.mac, request.bridge) == ("02:00:0a:00:00:99", "br1")
    assert any("context CD" in text for text in w.texts("I"))


async def test_attach_nic_post_failure_detaches_it_again(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    w.executor.failures["vnm:dummy/post@xen1"] = CommandFailed(
        "x", host="xen1", command="c", exit_code=1, stderr=""
    )
    reply = await run(w, "ATTACHNIC", vm.attach_nic())
    assert reply.result == "FAILURE"
    assert w.steps() == ["vnm:dummy/pre@xen1", "attach_nic", "vnm:dummy/post@xen1", "detach_nic"]


async def test_detach_nic_and_update_conf(vm: OnedVm) -> None:
    deployed(vm)
    mac = vm.nics[0]["MAC"]
    w = world()
    assert await run(w, "DETACHNIC", vm.detach_nic(mac)) == Reply("SUCCESS", "-")
    assert w.steps() == ["detach_nic", "vnm:dummy/clean@xen1", "tm:context"]
    assert w.executor.calls[0][1].mac == mac

    w = world()
    assert await run(w, "UPDATECONF", vm.update_conf()) == Reply("SUCCESS", "-")
    assert w.steps() == ["tm:context"]


async def test_attach_without_the_attached_device_is_refused(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "ATTACHDISK", vm.message("ATTACHDISK", TM_COMMAND="CLONE ssh a b 1 2"))
    assert reply.info == "Cannot perform ATTACHDISK, expecting VM/TEMPLATE/DISK[ATTACH='YES']/TARGET"
    reply = await run(w, "ATTACHNIC", vm.message("ATTACHNIC"))
    assert reply.info == "Cannot perform ATTACHNIC, expecting VM/TEMPLATE/NIC[ATTACH='YES']/MAC"


# ---------------------------------------------------------------------------- CLEANUP, UPDATESG, the rest


async def test_cleanup_runs_every_step_whatever_fails(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    w.executor.failures["cancel"] = Unavailable("cannot reach Xen host xen1", reason="HOST_UNREACHABLE")
    w.tm.exit_codes["delete"] = 1
    reply = await run(w, "CLEANUP", vm.cleanup())
    assert reply == Reply("SUCCESS", "-")
    assert w.steps() == ["cancel", "vnm:dummy/clean@xen1", "tm:delete", "tm:delete"]
    assert "Failed to execute transfer manager driver operation: delete." in w.texts("E")


async def test_update_sg_puts_the_security_group_first(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    reply = await run(w, "UPDATESG", vm.message("UPDATESG", SECURITY_GROUP_ID="3"))
    assert reply == Reply("SUCCESS", "3 -")
    assert w.steps() == ["vnm:dummy/update_sg@xen1"]
    w = world()
    w.executor.failures["vnm:dummy/update_sg@xen1"] = CommandFailed(
        "network step failed", host="xen1", command="c", exit_code=1, stderr=""
    )
    reply = await run(w, "UPDATESG", vm.message("UPDATESG", SECURITY_GROUP_ID="3"))
    assert reply.result == "FAILURE" and reply.info.startswith("3 dummy: ")


@pytest.mark.parametrize("action", ["SNAPSHOTCREATE", "DISKSNAPSHOTCREATE", "RESIZEDISK", "BACKUP", "POLL"])
async def test_unsupported_actions_fail_with_a_reason(vm: OnedVm, action: str) -> None:
    w = world()
    reply = await run(w, action, vm.message(action))
    assert reply.result == "FAILURE" and len(reply.info) > 20
    assert w.steps() == []


async def test_tm_failure_info_is_the_scripts_error_block(vm: OnedVm) -> None:
    w = world()
    w.tm.exit_codes["context"] = 1
    reply = await run(w, "DEPLOY", vm.deploy())
    assert reply == Reply.failure("context (ssh): no space left")
    assert w.steps() == ["translate", "tm:context"]
    assert any(
        t.startswith("Command execution failed (exit code: 1): /remotes/tm/ssh/context") for t in w.texts("E")
    )


async def test_responses_outputs_become_log_lines(vm: OnedVm) -> None:
    deployed(vm)
    w = world()
    await run(w, "REBOOT", vm.reboot())
    assert w.lines[0] == ("I", 'reboot: Executed "xl reboot" (exit 0, 0.01 s).')


def test_network_steps_enum_matches_the_proto() -> None:
    from adapter.vmm.actions import NETWORK_STEPS

    assert set(NETWORK_STEPS.values()) == set(executor_pb2.NetworkStep.values()) - {0}
