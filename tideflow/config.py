"""``buildflow.yaml``: the project name, its stacks and the flow's entry point.

BuildFlow's layout (``app:``, ``pulumi_config: {stacks: [...]}``) is read too.

```yaml
project: image-classification
entry_point: main:app
stacks:
  - name: local
  - name: gcp
    env: {GCP_PROJECT_ID: my-project}   # optional: environment for this stack
```
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

import yaml

from tideflow.exceptions import ConfigError
from tideflow.home import HOME_ENV, STACK_ENV

CONFIG_FILE = "buildflow.yaml"


@dataclasses.dataclass(frozen=True)
class Stack:
    name: str
    env: dict[str, str]


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    project: str
    entry_point: str
    stacks: tuple[Stack, ...]
    project_dir: Path

    def stack(self, name: str | None) -> Stack:
        """The stack called ``name``, else ``$STACK``, else the first one listed."""
        wanted = name or os.environ.get(STACK_ENV) or self.stacks[0].name
        for stack in self.stacks:
            if stack.name == wanted:
                return stack
        names = [s.name for s in self.stacks]
        close = difflib.get_close_matches(wanted, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown stack {wanted!r}; {hint}{CONFIG_FILE} lists: {', '.join(names)}"
        )

    def activate(self, stack: Stack) -> Path:
        """Set the environment the flow and its replicas read; the state directory."""
        os.environ[STACK_ENV] = stack.name
        for key, value in stack.env.items():
            os.environ.setdefault(key, value)
        home = os.environ.get(HOME_ENV) or str(self.project_dir / ".tideflow" / stack.name)
        os.environ[HOME_ENV] = str(Path(home).resolve())
        return Path(os.environ[HOME_ENV])


def load_config(directory: Path) -> ProjectConfig:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {directory.resolve()}; run tideflow from the project folder"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping with project, entry_point and stacks")
    # BuildFlow's own file names the project ``app`` and lists its stacks under
    # ``pulumi_config`` (tideflow needs no Pulumi: the rest of that section is ignored).
    project = data.get("project", data.get("app"))
    entry_point = data.get("entry_point")
    raw_stacks = data.get("stacks")
    if raw_stacks is None and "app" in data:
        pulumi = data.get("pulumi_config") or {}
        listed = pulumi.get("stacks") if isinstance(pulumi, dict) else None
        raw_stacks = [{"name": s["name"]} for s in listed or [] if isinstance(s, dict)]
        raw_stacks = raw_stacks or [{"name": "local"}]
    if not isinstance(project, str) or not project:
        raise ConfigError(f"{path}: 'project' must be a non-empty string")
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ConfigError(f"{path}: 'entry_point' must look like 'main:app', got {entry_point!r}")
    if not isinstance(raw_stacks, list) or not raw_stacks:
        raise ConfigError(f"{path}: 'stacks' must be a non-empty list of {{name: ...}} entries")
    stacks = []
    for index, raw in enumerate(raw_stacks):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ConfigError(f"{path}: stacks[{index}] must be a mapping with a 'name'")
        env = raw.get("env") or {}
        if not isinstance(env, dict):
            raise ConfigError(f"{path}: stacks[{index}].env must be a mapping")
        stacks.append(Stack(name=raw["name"], env={str(k): str(v) for k, v in env.items()}))
    return ProjectConfig(project, entry_point, tuple(stacks), directory.resolve())
