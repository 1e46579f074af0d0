import json

import pytest

from wmeval.zoo import BUILTIN_ZOOS, load_zoo, parse_zoo


def write(tmp_path, text, name="zoo.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_builtin_zoos_parse():
    from wmeval.reality import SUITES, default_zoo

    for name in BUILTIN_ZOOS:
        zoo = load_zoo(name)
        assert zoo.suite in SUITES and len(zoo.policies) >= 3
    assert {s: load_zoo(default_zoo(s)).suite for s in SUITES} == {s: s for s in SUITES}


def test_toml_and_json_agree(tmp_path):
    t = write(tmp_path, '[zoo]\nname="z"\n[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="noise", std=0.5}]\n')
    j = write(
        tmp_path,
        json.dumps(
            {
                "zoo": {"name": "z"},
                "policy": [{"name": "a", "base": "expert", "degrade": [{"kind": "noise", "std": 0.5}]}],
            }
        ),
        "zoo.json",
    )
    assert load_zoo(t).policies == load_zoo(j).policies


@pytest.mark.parametrize(
    "text, match",
    [
        (
            '[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="wobble"}]',
            r"policy\[0\] \(a\)\.degrade\[0\]: unknown degradation 'wobble'; valid kinds: noise, latency",
        ),
        (
            '[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="noise", sigma=1}]',
            r"noise has no parameter sigma; its parameters: std",
        ),
        ('[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="noise"}]', r"noise needs parameters std"),
        (
            '[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="slowdown", factor=2.0}]',
            r"slowdown.factor must be in \(0, 1\]",
        ),
        ('[[policy]]\nname="a"\nbase="expert"\ndegrade=[{kind="noise", std="big"}]', r"noise.std must be a number"),
        ('[[policy]]\nname="a"\nbase="oracle"', r"unknown base 'oracle'; valid bases: expert"),
        ('[[policy]]\nname="a b"\nbase="expert"', r"'name' must be"),
        ('[[policy]]\nname="a"\nbase="expert"\ncolour="red"', r"unknown key\(s\) colour"),
        ('[[policy]]\nname="a"\nbase="expert"\n[[policy]]\nname="a"\nbase="expert"', r"'a' is used twice"),
        (
            '[zoo]\nsuite="atari"\n[[policy]]\nname="a"\nbase="expert"',
            r"suite 'atari' is unknown; valid suites: metaworld",
        ),
        ('[zoo]\nname="empty"', r"no policies"),
        ('[[policy]\nname="a"', r"not valid TOML"),
    ],
)
def test_bad_zoo_files_get_one_clear_error(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=match) as e:
        load_zoo(path)
    assert str(path) in str(e.value)


def test_missing_zoo_and_unknown_policy_list_choices(tmp_path):
    with pytest.raises(ValueError, match="neither a file nor a built-in zoo"):
        load_zoo(tmp_path / "nope.toml")
    zoo = parse_zoo({"policy": [{"name": "a", "base": "expert"}]}, "x.toml")
    with pytest.raises(ValueError, match="no policy 'b'; policies: a"):
        zoo.select(["b"])
