"""OpenNebula template syntax, read and written: the one implementation every part uses
(driver defaults, monitoring payloads, import templates).

    >>> t = parse('CPU = 0.5\\nDISK = [ target = "xvda" ]\\n')
    >>> t.get("cpu"), t.vector("DISK")["TARGET"]
    ('0.5', 'xvda')
    >>> parse(dumps(t)) == t
    True
"""

from onexen.template.model import Template, Value, Vector
from onexen.template.parser import TemplateSyntaxError, parse
from onexen.template.writer import dumps, quote

__all__ = ["Template", "TemplateSyntaxError", "Value", "Vector", "dumps", "parse", "quote"]
