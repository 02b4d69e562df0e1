"""policy.yaml validation: every mistake is one ConfigError line naming the key."""

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.policy import load_policy

RULE = "roles:\n  r:\n    targets:\n      - match: {names: ['*']}\n"


@pytest.mark.parametrize(("text", "message"), [
    (RULE + "        reed: allow\n", "policy.yaml: roles.r.targets[0].reed: Extra inputs are not permitted"),
    (RULE + "        write: maybe\n", "policy.yaml: roles.r.targets[0].write: Input should be 'allow', 'approve'"),
    (RULE + "        approvals_required: 0\n",
     "policy.yaml: roles.r.targets[0].approvals_required: Input should be greater than or equal to 1"),
    (RULE + "        wait_timeout_s: 0\n", "policy.yaml: roles.r.targets[0].wait_timeout_s: Input should be greater"),
    (RULE + "        env: [PATH]\n",
     "policy.yaml: roles.r.targets[0].env: 'PATH' would let the agent set PATH, which no policy may grant"),
    (RULE + "        env: ['L*']\n", "policy.yaml: roles.r.targets[0].env: 'L*' would let the agent set LD_*"),
    (RULE + "        env: ['*']\n", "policy.yaml: roles.r.targets[0].env: '*' is not a variable name"),
    (RULE + "        env: [GIT_DIR]\n", "policy.yaml: roles.r.targets[0].env: 'GIT_DIR' would let the agent set GIT_*"),
    (RULE + "        env: [GCONV_PATH]\n", "policy.yaml: roles.r.targets[0].env: 'GCONV_PATH' would let the agent set"),
    (RULE + "        env: [PYTHONSTARTUP]\n",
     "policy.yaml: roles.r.targets[0].env: 'PYTHONSTARTUP' would let the agent set PYTHON*"),
    (RULE + "        env: ['KUBE*']\n",
     "policy.yaml: roles.r.targets[0].env: 'KUBE*' would let the agent set KUBECONFIG"),
    ("roles:\n  r:\n    targets:\n      - match: {}\n        read: allow\n",
     "policy.yaml: roles.r.targets[0].match: give names (use ['*'] for every target) or labels"),
    ("roles:\n  r:\n    targets:\n      - read: allow\n", "policy.yaml: roles.r.targets[0].match: Field required"),
    ("roles:\n  r:\n    targets:\n      - match: {names: []}\n", "policy.yaml: roles.r.targets[0].match.names: List"),
    ("roles:\n  r:\n    admin: [approvals.view, root]\n", "policy.yaml: roles.r.admin[1]: Input should be"),
    ("roles:\n  r:\n    approve: [{names: ['*']}]\n",
     "policy.yaml: roles.r: approve needs admin permission approvals.decide in the same role"),
    ("roles:\n  'bad role':\n    description: x\n", "policy.yaml: roles: role name 'bad role' must be letters"),
    ("defaults: {approvals_required: 0}\n", "policy.yaml: defaults.approvals_required: Input should be greater"),
    ("version: 2\n", "policy.yaml: version: Input should be 1"),
    ("rolez: {}\n", "policy.yaml: rolez: Extra inputs are not permitted"),
    ("- a\n", "policy.yaml: expected a mapping at the top level"),
    ("roles: [\n", "policy.yaml: invalid YAML at line 2"),
])
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "policy.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_policy(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path.name}/{message}")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_an_error_not_an_empty_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy.yaml: no such file"):
        load_policy(tmp_path)


def test_an_empty_role_list_loads_and_denies(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    assert load_policy(tmp_path).role_names == []
