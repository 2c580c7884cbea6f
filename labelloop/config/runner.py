"""The ``runner`` section: where the pipeline's tasks run (the flow's threads, or a Dask cluster)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from labelloop.config.base import Section

__all__ = ["RunnerConfig"]


class RunnerConfig(Section):
    """Where the pipeline's tasks run: in the flow's threads, or on a Dask cluster."""

    kind: Literal["default", "dask"] = Field(
        default="default", description="`default`: Prefect's thread pool; `dask`: a DaskTaskRunner (needs `prefect-dask`)."
    )
    address: str | None = Field(
        default=None, description="An existing Dask scheduler, e.g. `tcp://10.0.0.5:8786`; unset: a local cluster per turn."
    )
    n_workers: int = Field(default=2, ge=1, description="Workers of the local Dask cluster.")
    threads_per_worker: int = Field(default=1, ge=1, description="Threads per local Dask worker.")
    processes: bool = Field(
        default=True, description="Local Dask workers as processes (true) or threads of this process (false)."
    )

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "RunnerConfig":
        if self.address is not None and self.kind != "dask":
            raise ValueError(f"address is set ({self.address!r}) but kind is {self.kind!r}; set kind: dask")
        if self.address is not None and not re.match(r"^(tcp|tls|inproc|ucx)://", self.address):
            raise ValueError(f"address must be a Dask scheduler URL such as tcp://host:8786 (got {self.address!r})")
        return self
