"""masking.yaml: defaults, custom regexes, per role/target overrides and one-line config errors."""

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.masking import BUILTIN_NAMES, Masker, MaskingPolicy, load_masking, mask_bytes
from bastion.masking.detectors import BUILTIN

SHIPPED = Path(__file__).resolve().parent.parent / "policies" / "masking.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "masking.yaml"
    path.write_text(text)
    return path


def test_shipped_policy_loads_with_every_builtin_on() -> None:
    rules = load_masking(SHIPPED).for_session(["agent"], "web-1", {})
    assert {d.name for d in rules.detectors} >= set(BUILTIN_NAMES)
    assert rules.describe()[0] == "masking: on"
    url = b"DATABASE_URL=postgres://app:s3cr3t@db:5432/app\n"
    assert mask_bytes(rules, url) == b"DATABASE_URL=postgres://app:[MASKED:url-password]@db:5432/app\n"


def test_missing_file_means_everything_is_masked(tmp_path: Path) -> None:
    rules = load_masking(tmp_path / "absent.yaml").for_session([], "any", {})
    assert rules.detectors == BUILTIN
    assert list(dict.fromkeys(d.name for d in rules.detectors)) == list(BUILTIN_NAMES)


def test_missing_file_hides_no_less_than_the_shipped_one(tmp_path: Path) -> None:
    missing = load_masking(tmp_path / "absent.yaml").for_session(["agent"], "web-1", {})
    shipped = load_masking(SHIPPED).for_session(["agent"], "web-1", {})
    text = b"DATABASE_URL=postgres://app:s3cr3t@db:5432/app\nREDIS_URL=redis://:pw@cache:6379/0\n"
    assert mask_bytes(missing, text) == mask_bytes(shipped, text)
    assert b"s3cr3t" not in mask_bytes(missing, text)


def test_custom_regex_masks_only_its_value_group(tmp_path: Path) -> None:
    policy = load_masking(
        write(
            tmp_path,
            "custom:\n"
            "  - name: acme-key\n"
            "    pattern: 'acme_[0-9a-f]{16}'\n"
            "  - name: pin\n"
            "    pattern: 'pin (?P<value>[0-9]{4})'\n"
            "    ignore_case: true\n",
        )
    )
    rules = policy.for_session(["agent"], "web-1", {})
    masker = Masker(rules)
    out = masker.feed(b"key acme_0123456789abcdef PIN 1234\n")
    assert out == b"key [MASKED:acme-key] PIN [MASKED:pin]\n"
    assert masker.counts == {"acme-key": 1, "pin": 1}
    assert "custom: acme-key, pin" in rules.describe()


def test_masking_turns_off_for_a_role_only_by_explicit_entry(tmp_path: Path) -> None:
    policy = load_masking(write(tmp_path, "overrides:\n  - roles: [breakglass]\n    enabled: false\n"))
    off = policy.for_session(["agent", "breakglass"], "db-1", {})
    assert not off.enabled
    assert off.describe() == ["masking: off", "applied overrides[0] (roles=breakglass): masking off"]
    assert Masker(off).feed(b"password=x\n") == b"password=x\n"
    on = policy.for_session(["agent"], "db-1", {})
    assert on.enabled
    assert mask_bytes(on, b"password=x\n") == b"password=[MASKED:password-assignment]\n"


def test_overrides_select_by_target_glob_and_labels_in_order(tmp_path: Path) -> None:
    policy = load_masking(
        write(
            tmp_path,
            "detectors: [card-number, us-ssn, password-assignment]\n"
            "overrides:\n"
            "  - targets: ['payments-*']\n"
            "    disable: [card-number]\n"
            "  - labels: {env: prod}\n"
            "    enable: [jwt]\n"
            "    disable: [us-ssn]\n",
        )
    )

    def names(target: str, labels: dict[str, str]) -> list[str]:
        # A kind can have several detectors (password-assignment has one per family of forms).
        return list(dict.fromkeys(d.name for d in policy.for_session([], target, labels).detectors))

    assert names("web-1", {}) == ["card-number", "us-ssn", "password-assignment"]
    assert names("payments-eu", {}) == ["us-ssn", "password-assignment"]
    assert names("payments-eu", {"env": "prod"}) == ["jwt", "password-assignment"]
    assert names("web-1", {"env": "dev"}) == ["card-number", "us-ssn", "password-assignment"]


def test_default_policy_model_is_all_on() -> None:
    assert MaskingPolicy().for_session([], "x", {}).describe()[1].startswith("detectors: private-key, ")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("custom:\n  - name: bad\n    pattern: 'a(b'\n", "custom[0].pattern"),
        ("custom:\n  - name: empty\n    pattern: 'x*'\n", "custom[0].pattern"),
        ("custom:\n  - name: jwt\n    pattern: 'x'\n", "custom[0].name"),
        ("overides: []\n", "overides"),
        ("detectors: [credit-card]\n", "detectors"),
        ("overrides:\n  - roles: [a]\n    disable: [nope]\n", "overrides[0].disable"),
        ("overrides:\n  - roles: [a]\n    enabled: maybe\n", "overrides[0].enabled"),
        ("version: 2\n", "version"),
        ("- just a list\n", "top level"),
        ("custom: [\n", "invalid YAML"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_masking(write(tmp_path, text))
    message = str(err.value)
    assert names in message
    assert "\n" not in message


def test_a_custom_rule_named_like_a_built_in_detector_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "masking.yaml"
    path.write_text("custom:\n  - name: url-password\n    pattern: '://[^\\s:/@]{1,128}:(?P<value>[^\\s:/@]{1,256})@'\n")
    with pytest.raises(ConfigError, match=r"custom\[0\]\.name: 'url-password' is a built-in detector: list it "
                                          r"under detectors \(if the file lists them\) and remove or rename this rule"):
        load_masking(path)
