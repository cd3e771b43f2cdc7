"""The identity of a run: the one name its outputs share.

Every stage writes ``artifacts/<dataset>/<name>/`` and ``reports/metrics/<dataset>/<name>.json``
(dvc.yaml spells the same names out in its ``outs``). A name is

  ``<base>[_z<d>][+<baseline>]``

- ``base``: an encoder (``ae``), a mixture model (``vade``), a latent-sweep variant
  (``gmvae_dpgmm_soft``, ``gmvae_dpgmm_from_gmvae``) or a mixture-of-experts gate
  (``moe_<gate>``);
- ``_z<d>``: the latent dim d of the latent-dimension sweep; MoE runs always carry it, with
  d = 0 for gates without a latent space (``moe_deepmoe_z0``);
- ``+<baseline>``: a clustering fitted on the latents of the run named before the ``+``
  (``ae+umap_gmm``, ``vae_z5+gmm``).

Build and read names only through :class:`RunId`, so the convention lives here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

MOE_PREFIX = "moe_"
_NAME = re.compile(r"^(?P<base>[A-Za-z0-9_]+?)(?:_z(?P<dim>\d+))?(?:\+(?P<baseline>\w+))?$")


@dataclass(frozen=True)
class RunId:
    base: str
    latent_dim: int | None = None
    baseline: str | None = None

    def __post_init__(self) -> None:
        if not self.base or "+" in self.base or re.search(r"_z\d+$", self.base):
            raise ValueError(f"{self.base!r} is not a run's base name")

    @classmethod
    def moe(cls, gate: str, latent_dim: int) -> RunId:
        """The MoE run of ``gate`` at ``latent_dim`` (0: a gate without a latent space)."""
        return cls(MOE_PREFIX + gate, int(latent_dim))

    @classmethod
    def parse(cls, name: str) -> RunId:
        """The inverse of :attr:`name`; a name outside the convention is a ValueError."""
        m = _NAME.match(name)
        if m is None:
            raise ValueError(f"{name!r} is not a run name (<base>[_z<d>][+<baseline>])")
        dim = m["dim"]
        return cls(m["base"], None if dim is None else int(dim), m["baseline"])

    @property
    def name(self) -> str:
        z = "" if self.latent_dim is None else f"_z{self.latent_dim}"
        return f"{self.base}{z}" + (f"+{self.baseline}" if self.baseline else "")

    def __str__(self) -> str:
        return self.name

    @property
    def is_moe(self) -> bool:
        return self.base.startswith(MOE_PREFIX)

    @property
    def gate(self) -> str:
        """The MoE gate (``dvmoe`` of ``moe_dvmoe_z2``)."""
        if not self.is_moe:
            raise ValueError(f"{self.name!r} is not a mixture-of-experts run")
        return self.base[len(MOE_PREFIX):]

    @property
    def source(self) -> RunId:
        """The run whose latents a baseline clustered (``vae_z5`` of ``vae_z5+gmm``); the
        run itself when it is no baseline."""
        return replace(self, baseline=None)

    def with_baseline(self, baseline: str) -> RunId:
        return replace(self, baseline=baseline)


def run_name(base: str, latent_dim: int | None = None, baseline: str | None = None) -> str:
    """``RunId(base, latent_dim, baseline).name``."""
    return RunId(base, latent_dim, baseline).name
