"""The translator's two pure entry points, the ones the gRPC servicer calls.

    translate(vm_xml, defaults) -> Translation(config, warnings, domain_name, cpu_weight)
    import_domain(domain_json)  -> ImportResult(template, deploy_id, warnings)

Both raise `TranslationError` (one `(field path, sentence)` per problem) and
nothing else for bad input; neither does any I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from onexen.template import Template, TemplateSyntaxError, parse
from services.translator.errors import TranslationError
from services.translator.importer import import_template
from services.translator.policy import plan_domain
from services.translator.raw import final_weight, overridden
from services.translator.resolve import DEFAULTS, Findings
from services.translator.vm_xml import read_vm_xml
from services.translator.xlconfig import UnrepresentableValue, render
from services.translator.xlreader import XlSyntaxError, read

__all__ = ["ImportResult", "Translation", "TranslationError", "import_domain", "parse_defaults", "translate"]


@dataclass(frozen=True, slots=True)
class Translation:
    config: str
    warnings: tuple[str, ...]
    domain_name: str
    cpu_weight: int


@dataclass(frozen=True, slots=True)
class ImportResult:
    template: str
    deploy_id: str
    warnings: tuple[str, ...]


@functools.lru_cache(maxsize=16)
def parse_defaults(text: str) -> Template:
    """The driver defaults file (vmm_exec_xen.conf); cached, as every call passes the same one."""
    try:
        return parse(text)
    except TemplateSyntaxError as exc:
        raise TranslationError.for_field(DEFAULTS, f"is not OpenNebula template syntax: {exc}") from None


def _unique(violations: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # A bad default (defaults/DISK/DRIVER) is found once per disk; say it once.
    return list(dict.fromkeys(violations))


def translate(vm_xml: str, defaults: str = "") -> Translation:
    """The xl config for the VM in `vm_xml` (oned's VM XML) with the driver `defaults`."""
    vm = read_vm_xml(vm_xml)
    findings = Findings()
    plan = plan_domain(vm, parse_defaults(defaults), findings)
    if findings.violations:
        raise TranslationError(_unique(findings.violations))
    try:
        config = render(plan.config)
    except UnrepresentableValue as exc:
        # The policy refuses such values with a precise path first; this is the safety net.
        raise TranslationError.for_field("TEMPLATE", f"a value cannot be written safely: {exc}") from None
    weight = plan.config.cpu_weight or 0
    if plan.raw:
        # Read the whole config back as xl will: each RAW parsed alone already, this
        # catches what they break together, and what they change of ours. (Without
        # RAW the text is ours alone, and its escaping is proven against xl by the tests.)
        try:
            settings = read(config)
        except XlSyntaxError as exc:
            raise TranslationError.for_field(plan.raw[0].path, f"breaks the config's syntax: {exc}") from None
        translated_lines = config.count("\n") - sum(chunk.text.count("\n") for chunk in plan.raw)
        overridden(plan.raw, {s.name for s in settings if s.line <= translated_lines}, findings)
        weight = final_weight(settings, plan.raw, weight, findings)
        if findings.violations:
            raise TranslationError(_unique(findings.violations))
    warnings = tuple(dict.fromkeys(findings.warnings)) if findings.warnings else ()
    return Translation(config, warnings, plan.config.name, weight)


def import_domain(domain_json: str) -> ImportResult:
    """An OpenNebula template importing the domain described by `domain_json` (`xl list -l`)."""
    template, name, warnings = import_template(domain_json)
    return ImportResult(template, name, tuple(warnings))
