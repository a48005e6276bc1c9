"""The one error the translator raises: the input cannot become a safe xl config.

Kept free of grpc so the translation modules stay pure; the service turns it into
INVALID_ARGUMENT with one BadRequest field violation per problem
(`to_invalid_argument`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onexen.runtime.errors import InvalidArgument

__all__ = ["TranslationError"]


class TranslationError(ValueError):
    """`violations` pairs a field path (`TEMPLATE/DISK[2]/TARGET`, `vm_xml`,
    `defaults/DISK/DRIVER`, `domain_json`) with a sentence a user can act on."""

    def __init__(self, violations: Iterable[tuple[str, str]], message: str | None = None) -> None:
        self.violations: list[tuple[str, str]] = list(violations)
        if not self.violations:
            raise ValueError("a TranslationError needs at least one violation")
        if message is None:
            if len(self.violations) == 1:
                field, description = self.violations[0]
                message = f"{field}: {description}"
            else:
                message = f"{len(self.violations)} problems: " + "; ".join(
                    f"{field}: {description}" for field, description in self.violations
                )
        super().__init__(message)
        self.message = message

    @classmethod
    def for_field(cls, field: str, description: str) -> TranslationError:
        return cls([(field, description)])

    def to_invalid_argument(self) -> InvalidArgument:
        """The service's INVALID_ARGUMENT for this error (imports the gRPC runtime lazily)."""
        from onexen.runtime.errors import FieldViolation, InvalidArgument

        return InvalidArgument(self.message, [FieldViolation(field, text) for field, text in self.violations])
