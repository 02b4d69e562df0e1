"""The JSON schema of policy.yaml, generated from the models so editors and the loader never disagree.

Regenerate the shipped copy with ``python -m bastion.policy.schema > policies/policy.schema.json``.
"""

from __future__ import annotations

import json

from bastion.policy.model import PolicyFile


def policy_schema() -> str:
    schema = PolicyFile.model_json_schema()
    schema["title"] = "bastion policy.yaml"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(policy_schema(), end="")
