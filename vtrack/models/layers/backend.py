"""The one ``set_backend``: every model and attention layer that runs on :mod:`vtrack.kernels`
switches its kernel backend through :class:`BackendSwitchable`.

A name is checked by the kernel dispatcher (:func:`vtrack.kernels.check_backend`): ``"auto"`` or
any registered backend, including one added with :func:`vtrack.kernels.register_backend`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from vtrack.kernels.dispatch import check_backend

__all__ = ["BackendSwitchable", "KernelLayer", "SupportsBackend", "check_backend"]


@runtime_checkable
class SupportsBackend(Protocol):
    """A model whose kernel backend can be switched (``train.backend``, benchmarks)."""

    def set_backend(self, backend: str) -> None:
        """Use kernel ``backend`` in every attention layer."""


class BackendSwitchable:
    """Mixin for ``nn.Module`` s: :meth:`set_backend` switches every :class:`KernelLayer` inside."""

    def set_backend(self, backend: str) -> None:
        """Use kernel ``backend`` (``"auto"`` or a registered name) in every attention layer."""
        name = check_backend(backend)
        for m in self.modules():  # type: ignore[attr-defined]
            if isinstance(m, KernelLayer):
                m.backend = name
        self._backend_changed(name)

    def _backend_changed(self, backend: str) -> None:
        """Hook for a module that also records the backend elsewhere (e.g. in its config)."""


class KernelLayer(BackendSwitchable):
    """Mixin of a layer that calls a :mod:`vtrack.kernels` op with ``backend=self.backend``."""

    backend: str = "auto"
