"""Settings: defaults, where the file comes from, the environment, secrets, and every mistake."""

from __future__ import annotations

import os
import re
import sys
import tomllib
import traceback
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from imap_bouncer import settings as settings_module
from imap_bouncer.settings import (
    ImapSettings,
    Settings,
    SettingsError,
    WebhookSettings,
    find_settings_file,
    load_settings,
)

REPO = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-Hunter2"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No settings file, no IMAP_BOUNCER_* variables, a cwd of our own."""
    for name in list(os.environ):
        if name.upper().startswith("IMAP_BOUNCER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(settings_module, "SYSTEM_PATH", tmp_path / "etc" / "settings.toml")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str) -> Settings:
    return load_settings(write(tmp_path / "custom.toml", text))


def error_for(tmp_path: Path, text: str) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load_text(tmp_path, text)
    return caught.value


def everything_about(err: BaseException) -> str:
    """All an exception could ever show: message, repr, chained causes, formatted traceback."""
    parts = ["".join(traceback.format_exception(err)), repr(err)]
    cause = err.__cause__ or err.__context__
    while cause is not None:
        parts.append(repr(cause))
        cause = cause.__cause__ or cause.__context__
    return "\n".join(parts)


# -- defaults ---------------------------------------------------------------------------------


def test_defaults_without_any_file() -> None:
    settings = load_settings()
    assert settings.config_file is None
    imap = settings.imap
    assert (imap.name, imap.host, imap.port, imap.security) == ("default", "", 993, "tls")
    assert imap.verify_certificate and not imap.allow_insecure and imap.ca_file is None
    assert imap.auth == "login" and imap.password is None
    assert imap.source_folder == "INBOX"
    assert (imap.folders.processed, imap.folders.unknown, imap.folders.error) == (
        "Processed", "Unknown", "Error")
    assert imap.mode == "idle" and imap.batch_size == 100
    assert imap.idle_renew <= 600 and not imap.allow_plain_expunge
    assert imap.max_message_size == 25 * 1024 * 1024
    assert settings.database.url == "sqlite:///imap-bouncer.db"
    assert settings.database.store_raw is False
    assert settings.analysis.verp_patterns == ()
    assert settings.logging.level == "INFO"
    assert settings.mailboxes == () and settings.all_mailboxes == (imap,)


@pytest.mark.parametrize(("security", "port"), [("tls", 993), ("starttls", 143), ("none", 143)])
def test_default_port_follows_security(tmp_path: Path, security: str, port: int) -> None:
    settings = load_text(tmp_path, f'[imap]\nhost = "localhost"\nsecurity = "{security}"\n')
    assert settings.imap.port == port


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.imap = ImapSettings()  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.imap.port = 1  # type: ignore[misc]


def test_missing_imap_keys_are_named_when_a_command_needs_imap() -> None:
    settings = load_settings()  # loading is fine without them ...
    with pytest.raises(SettingsError) as caught:
        settings.imap_mailboxes()  # ... connecting is not
    keys = [key for key, _ in caught.value.problems]
    assert keys == ["imap.host", "imap.username", "imap.password"]
    assert "imap.host: required" in str(caught.value)


def test_xoauth2_needs_a_token(tmp_path: Path) -> None:
    settings = load_text(tmp_path, '[imap]\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n')
    with pytest.raises(SettingsError, match=r"imap\.token: auth = 'xoauth2' needs"):
        settings.imap_mailboxes()


def test_complete_settings_pass(tmp_path: Path) -> None:
    settings = load_text(tmp_path, f'[imap]\nhost = "imap.example.org"\nusername = "u"\n'
                                   f'password = "{SECRET}"\n')
    assert settings.imap_mailboxes() == (settings.imap,)
    assert settings.imap.secret().get_secret_value() == SECRET


# -- which file -------------------------------------------------------------------------------


def test_loading_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = write(settings_module.SYSTEM_PATH, '[imap]\nhost = "system"\n')
    assert load_settings().imap.host == "system"
    assert load_settings().config_file == system

    local = write(tmp_path / "settings.toml", '[imap]\nhost = "local"\n')
    assert load_settings().imap.host == "local"
    assert find_settings_file() == Path("settings.toml")
    assert local.is_file()

    from_env = write(tmp_path / "env" / "s.toml", '[imap]\nhost = "env"\n')
    monkeypatch.setenv("IMAP_BOUNCER_CONFIG", str(from_env))
    assert load_settings().imap.host == "env"

    explicit = write(tmp_path / "explicit.toml", '[imap]\nhost = "explicit"\n')
    settings = load_settings(explicit)
    assert settings.imap.host == "explicit" and settings.config_file == explicit


def test_explicit_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_config_variable_must_name_a_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "settings.toml", "")  # not a fallback when the variable is wrong
    monkeypatch.setenv("IMAP_BOUNCER_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match=r"not found \(from \$IMAP_BOUNCER_CONFIG\)"):
        load_settings()


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[imap]\nhost = "x"\nport = \n')
    assert "custom.toml" in str(err) and "not valid TOML" in str(err) and "line 3" in str(err)


def test_unreadable_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    with pytest.raises(SettingsError, match="not found"):
        load_settings(directory)


# -- environment ------------------------------------------------------------------------------


def test_environment_overrides_every_level(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "settings.toml",
          '[imap]\nhost = "file"\nport = 1143\n[imap.folders]\nerror = "Err"\n'
          '[database]\nurl = "sqlite:///file.db"\n')
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__HOST", "env.example.org")
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__PASSWORD", SECRET)
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__FOLDERS__UNKNOWN", "Unrecognised")
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__BATCH_SIZE", "25")
    monkeypatch.setenv("IMAP_BOUNCER_DATABASE__URL", "postgresql://bouncer@db/bouncer")
    monkeypatch.setenv("IMAP_BOUNCER_DATABASE__STORE_RAW", "true")
    monkeypatch.setenv("IMAP_BOUNCER_ANALYSIS__VERP_PATTERNS",
                       '["bounces+{local}={domain}@lists.example.org"]')
    monkeypatch.setenv("imap_bouncer_logging__level", "debug")  # any case
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__USERNAME", "")  # empty: ignored
    settings = load_settings()
    imap = settings.imap
    assert imap.host == "env.example.org" and imap.port == 1143  # env wins, file fills in
    assert imap.password is not None and imap.password.get_secret_value() == SECRET
    assert imap.folders.unknown == "Unrecognised" and imap.folders.error == "Err"
    assert imap.batch_size == 25 and imap.username == ""
    assert settings.database.url == "postgresql://bouncer@db/bouncer"
    assert settings.database.store_raw is True
    assert settings.analysis.verp_patterns == ("bounces+{local}={domain}@lists.example.org",)
    assert settings.logging.level == "DEBUG"


def test_mailboxes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__HOST", "shared.example.org")
    monkeypatch.setenv("IMAP_BOUNCER_MAILBOXES",
                       '[{"name": "a", "username": "a"}, {"name": "b", "username": "b"}]')
    settings = load_settings()
    assert [(m.name, m.host) for m in settings.all_mailboxes] == [
        ("a", "shared.example.org"), ("b", "shared.example.org")]


def test_unrelated_variables_with_the_prefix_are_ignored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_BOUNCER_TEST_DATABASE_URL", "postgresql://x@y/z")
    monkeypatch.setenv("IMAP_BOUNCER_TEST_IMAP_HOST", "somewhere")
    load_settings()


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__PORT", "lots")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("imap.port (from $IMAP_BOUNCER_IMAP__PORT): ")


def test_environment_list_that_is_not_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_BOUNCER_ANALYSIS__VERP_PATTERNS", "bounces+{local}={domain}@x")
    with pytest.raises(SettingsError, match=r"analysis .*from the environment.*JSON"):
        load_settings()


# -- secrets ----------------------------------------------------------------------------------


def test_password_from_file_never_shows(tmp_path: Path) -> None:
    secret_file = write(tmp_path / "pw", f"{SECRET}\n")
    settings = load_text(tmp_path, f'[imap]\nhost = "h"\nusername = "u"\n'
                                   f'password_file = "{secret_file}"\n'
                                   '[database]\nurl = "postgresql://u:dbpw-XYZ@db/x"\n')
    assert settings.imap.secret().get_secret_value() == SECRET
    shown = [repr(settings), str(settings), repr(settings.imap), settings.model_dump_json(),
             str(settings.model_dump()), repr(settings.database)]
    for text in shown:
        assert SECRET not in text
        assert "dbpw-XYZ" not in text or text.startswith("{")  # model_dump: the raw value
    assert "postgresql://u:***@db/x" in repr(settings.database)
    assert settings.database.redacted_url == "postgresql://u:***@db/x"


def test_secrets_do_not_leak_into_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_BOUNCER_IMAP__TOKEN", SECRET)
    monkeypatch.setenv("IMAP_BOUNCER_DATABASE__URL", f"mysql://u:{SECRET}@db/x")
    err = error_for(tmp_path, f'[imap]\nhost = "h"\npassword = "{SECRET}"\nport = "{SECRET}"\n'
                              f'security = "{SECRET}"\n')
    text = everything_about(err)
    assert SECRET not in text
    assert "imap.port" in text and "imap.security" in text and "database.url" in text


def test_secret_of_wrong_type_does_not_leak(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[imap]\npassword = ["s3cr3t-Hunter2"]\n')
    assert SECRET not in everything_about(err)
    assert "imap.password" in str(err)


def test_secrets_keep_their_spaces(tmp_path: Path) -> None:
    secret_file = write(tmp_path / "pw", " two words \nsecond line ignored\n")
    settings = load_text(tmp_path, f'[imap]\npassword_file = "{secret_file}"\n'
                                   'host = "  imap.example.org "\n')
    assert settings.imap.password.get_secret_value() == " two words "
    assert settings.imap.host == "imap.example.org"
    settings = load_text(tmp_path, '[imap]\npassword = " p w "\nca_file = ""\n')
    assert settings.imap.password.get_secret_value() == " p w "
    assert settings.imap.ca_file is None


def test_both_password_and_file(tmp_path: Path) -> None:
    secret_file = write(tmp_path / "pw", SECRET)
    err = error_for(tmp_path, f'[imap]\npassword = "{SECRET}"\npassword_file = "{secret_file}"\n')
    assert str(err).startswith("imap.password: set password or password_file, not both")
    assert SECRET not in everything_about(err)


def test_empty_password_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "pw", "\n\n")
    err = error_for(tmp_path, f'[imap]\npassword_file = "{empty}"\n')
    assert str(err).startswith("imap.password_file: ")
    assert "is empty" in str(err)


def test_token_file_is_read_at_each_call(tmp_path: Path) -> None:
    token = write(tmp_path / "token", "first\n")
    settings = load_text(tmp_path, f'[imap]\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n'
                                   f'token_file = "{token}"\n')
    assert settings.imap.secret().get_secret_value() == "first"
    token.write_text("second\n")
    assert settings.imap.secret().get_secret_value() == "second"
    token.unlink()
    with pytest.raises(SettingsError, match=r"^imap\.token_file: cannot read"):
        settings.imap.secret()


def test_token_command(tmp_path: Path) -> None:
    script = write(tmp_path / "token.py", f"print({SECRET!r})\n")
    settings = load_text(tmp_path, f'[imap]\nhost = "h"\nusername = "u"\nauth = "xoauth2"\n'
                                   f'token_command = ["{sys.executable}", "{script}"]\n')
    assert isinstance(settings.imap.secret(), SecretStr)
    assert settings.imap.secret().get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    # As a string, split like a shell would.
    settings = load_text(tmp_path, f'[imap]\nauth = "xoauth2"\n'
                                   f"token_command = '{sys.executable} {script}'\n")
    assert settings.imap.token_command == (sys.executable, str(script))


def test_failing_token_command_shows_no_output(tmp_path: Path) -> None:
    script = write(tmp_path / "token.py",
                   f"import sys\nprint({SECRET!r})\nprint({SECRET!r}, file=sys.stderr)\n"
                   "sys.exit(3)\n")
    settings = load_text(tmp_path, f'[imap]\nauth = "xoauth2"\n'
                                   f'token_command = ["{sys.executable}", "{script}"]\n')
    with pytest.raises(SettingsError) as caught:
        settings.imap.secret()
    assert str(caught.value) == "imap.token_command: exited with status 3"
    assert SECRET not in everything_about(caught.value)
    missing = load_text(tmp_path, '[imap]\nauth = "xoauth2"\ntoken_command = "/no/such/cmd"\n')
    with pytest.raises(SettingsError, match=r"^imap\.token_command: cannot run"):
        missing.imap.secret()


# -- several mailboxes ------------------------------------------------------------------------


def test_mailboxes_inherit_from_imap(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "file-password")
    settings = load_text(tmp_path, f"""
[imap]
host = "imap.example.org"
password = "{SECRET}"
[imap.folders]
error = "Bounces/Error"

[[mailboxes]]
name = "lists"
username = "lists@example.org"

[[mailboxes]]
name = "shop"
username = "shop@example.org"
security = "starttls"
password_file = "{pw}"
[mailboxes.folders]
processed = "Done"
""")
    lists, shop = settings.all_mailboxes
    assert (lists.name, lists.host, lists.port, lists.username) == (
        "lists", "imap.example.org", 993, "lists@example.org")
    assert lists.password.get_secret_value() == SECRET
    assert lists.folders.error == "Bounces/Error"
    assert (shop.port, shop.security) == (143, "starttls")
    assert shop.password.get_secret_value() == "file-password"
    assert (shop.folders.processed, shop.folders.error) == ("Done", "Bounces/Error")
    assert (lists.key, shop.key) == ("mailboxes[0]", "mailboxes[1]")
    assert settings.imap_mailboxes() == (lists, shop)


def test_mailbox_missing_keys_are_named_by_index(tmp_path: Path) -> None:
    settings = load_text(tmp_path, '[[mailboxes]]\nname = "a"\nhost = "h"\nusername = "u"\n'
                                   'password = "p"\n[[mailboxes]]\nname = "b"\n')
    with pytest.raises(SettingsError) as caught:
        settings.imap_mailboxes()
    assert [key for key, _ in caught.value.problems] == [
        "mailboxes[1].host", "mailboxes[1].username", "mailboxes[1].password"]


def test_a_mistake_in_imap_is_reported_once(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[imap]\nport = 0\n[[mailboxes]]\nname = "a"\n'
                              '[[mailboxes]]\nname = "b"\n')
    assert [key for key, _ in err.problems] == ["imap.port"]


# -- every kind of mistake names its key ------------------------------------------------------

BAD = [
    # (TOML text, the key the message must start with, a word of the message)
    ('[imap]\nport = 70000\n', "imap.port", "65535"),
    ('[imap]\nport = "imap"\n', "imap.port", "integer"),
    ('[imap]\nsecurity = "ssl"\n', "imap.security", "'tls'"),
    ('[imap]\nhost = "imap.example.org"\nsecurity = "none"\n', "imap.security", "localhost"),
    ('[imap]\nhost = "imaps://imap.example.org:993"\n', "imap.host", "without scheme"),
    ('[imap]\nverify_certificate = "maybe"\n', "imap.verify_certificate", "boolean"),
    ('[imap]\nca_file = "/no/such/ca.pem"\n', "imap.ca_file", "no such file"),
    ('[imap]\nusername = 5\n', "imap.username", "string"),
    ('[imap]\nauth = "plain"\n', "imap.auth", "'login'"),
    ('[imap]\npassword_file = "/no/such/file"\n', "imap.password_file", "no such file"),
    ('[imap]\ntoken = "t"\n', "imap.auth", "xoauth2"),
    ('[imap]\nauth = "xoauth2"\npassword = "p"\n', "imap.auth", "password"),
    ('[imap]\nauth = "xoauth2"\ntoken = "t"\ntoken_command = "x"\n', "imap.token", "only one"),
    ('[imap]\ntoken_command = "unclosed \'quote"\n', "imap.token_command", "split"),
    ('[imap]\nsource_folder = ""\n', "imap.source_folder", "at least 1"),
    ('[imap.folders]\nerror = "inbox"\n', "imap.folders", "different"),
    ('[imap.folders]\nprocessed = "Done"\nunknown = "Done"\n', "imap.folders", "different"),
    ('[imap.folders]\ntrash = "Trash"\n', "imap.folders.trash", "unknown key"),
    ('[imap]\nmode = "push"\n', "imap.mode", "'idle'"),
    ('[imap]\npoll_interval = 0\n', "imap.poll_interval", "greater than 0"),
    ('[imap]\nbatch_size = 0\n', "imap.batch_size", "greater than or equal to 1"),
    ('[imap]\ntimeout = -5\n', "imap.timeout", "greater than 0"),
    ('[imap]\nidle_renew = 1800\n', "imap.idle_renew", "600"),
    ('[imap]\nallow_plain_expunge = "yes please"\n', "imap.allow_plain_expunge", "boolean"),
    ('[imap]\nmax_message_size = "lots"\n', "imap.max_message_size", "25MB"),
    ('[imap]\nmax_message_size = 10\n', "imap.max_message_size", "1024"),
    ('[imap]\nname = "my mailbox"\n', "imap.name", "letters"),
    ('[imap]\nprot = 993\n', "imap.prot", "unknown key"),
    ('[imapp]\nhost = "x"\n', "imapp", "unknown key"),
    ('imap = "imap.example.org"\n', "imap", "must be a table"),
    ('mailboxes = ["a"]\n', "mailboxes[0]", "must be a table"),
    ('[database]\nurl = "mysql://db/x"\n', "database.url", "sqlite:///"),
    ('[database]\nurl = "sqlite://x.db"\n', "database.url", "sqlite:///"),
    ('[database]\nurl = "postgresql://db.example.org"\n', "database.url", "names the database"),
    ('[database]\nurl = "postgresql://db:port/x"\n', "database.url", "not a valid"),
    ('[database]\nstore_raw = 2\n', "database.store_raw", "boolean"),
    ('[analysis]\nverp_patterns = ["bounces+{local}@x.org"]\n', "analysis.verp_patterns[0]",
     "{domain}"),
    ('[analysis]\nverp_patterns = ["a+{local}={domain}@x", "b+{local}@{local}.{domain}"]\n',
     "analysis.verp_patterns[1]", "exactly once"),
    ('[analysis]\nverp_patterns = "b+{local}={domain}@x"\n', "analysis.verp_patterns", "a list"),
    ('[analysis]\ntime_budget = 0\n', "analysis.time_budget", "greater than 0"),
    ('[analysis]\ntime_budget = "5s"\n', "analysis.time_budget", "number"),
    ('[logging]\nlevel = "LOUD"\n', "logging.level", "'DEBUG'"),
    ('[[mailboxes]]\nname = "a"\n[[mailboxes]]\nname = "a"\n', "mailboxes[1].name", "unique"),
    ('[[mailboxes]]\nname = "a"\nport = -1\n', "mailboxes[0].port", "greater than"),
    ('[[mailboxes]]\nname = "a"\nhots = "x"\n', "mailboxes[0].hots", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "word"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_setting_names_its_key(tmp_path: Path, text: str, key: str, word: str) -> None:
    err = error_for(tmp_path, text)
    assert err.problems[0][0] == key, str(err)
    assert str(err).startswith(f"{key}: "), str(err)
    assert word in str(err), str(err)
    assert "custom.toml" in str(err)  # and says which file


def test_several_mistakes_are_all_listed(tmp_path: Path) -> None:
    err = error_for(tmp_path, '[imap]\nport = 0\nmode = "x"\n[logging]\nlevel = "x"\n')
    assert [key for key, _ in err.problems] == ["imap.port", "imap.mode", "logging.level"]
    assert re.match(r"3 problems in the settings \(settings file \S+/custom.toml\):\n  imap.port: ",
                    str(err))


def test_loopback_hosts_may_go_without_tls(tmp_path: Path) -> None:
    for host in ("localhost", "127.0.0.1", "::1", "[::1]", "imap.localhost"):
        assert load_text(tmp_path, f'[imap]\nhost = "{host}"\nsecurity = "none"\n').imap.port == 143
    settings = load_text(tmp_path, '[imap]\nhost = "10.0.0.5"\nsecurity = "none"\n'
                                   'allow_insecure = true\n')
    assert settings.imap.security == "none"


@pytest.mark.parametrize(("value", "size"), [
    (1048576, 1048576), ('"25MB"', 25 * 1024 * 1024), ('"512K"', 512 * 1024),
    ('"1 GiB"', 1024 ** 3), ('"4096"', 4096),
])
def test_max_message_size_units(tmp_path: Path, value: object, size: int) -> None:
    settings = load_text(tmp_path, f"[imap]\nmax_message_size = {value}\n")
    assert settings.imap.max_message_size == size


# -- the documented example -------------------------------------------------------------------

_KEY_LINE = re.compile(r"^#(?P<key>[a-z_]+) = (?P<value>.+)$")
_TABLE_LINE = re.compile(r"^#?\[(?P<table>[a-z_.]+)\]$")


def documented_keys() -> dict[tuple[str, str], list[object]]:
    """(table, key) -> the values shown for it in the example settings.toml."""
    shown: dict[tuple[str, str], list[object]] = {}
    table = ""
    for line in (REPO / "settings.toml").read_text(encoding="utf-8").splitlines():
        header = _TABLE_LINE.match(line) or re.match(r"^#?\[\[(?P<table>[a-z_]+)\]\]$", line)
        if header:
            table = header.group("table")
            continue
        match = _KEY_LINE.match(line)
        if match:
            value = tomllib.loads(f"v = {match.group('value')}")["v"]
            shown.setdefault((table, match.group("key")), []).append(value)
    return shown


def model_keys() -> dict[tuple[str, str], object]:
    """(table, key) -> default, for every key of every table."""
    keys: dict[tuple[str, str], object] = {}

    def walk(table: str, model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(f"{table}.{name}" if table else name, annotation)
            elif table:
                keys[(table, name)] = info.default

    walk("", Settings)
    for name, info in ImapSettings.model_fields.items():
        if name != "folders":
            keys[("mailboxes", name)] = info.default
    for name, info in WebhookSettings.model_fields.items():  # [[webhooks]]: an example
        keys[("webhooks", name)] = None if info.is_required() else info.default
    return keys


def test_example_settings_file_is_all_defaults() -> None:
    settings = load_settings(REPO / "settings.toml")
    defaults = Settings()
    assert settings.model_dump() == defaults.model_dump()


def test_example_settings_file_documents_every_key_with_its_default() -> None:
    shown = documented_keys()
    keys = model_keys()
    imap_keys = {key for table, key in keys if table == "imap"}
    undocumented = {k for k in keys if k not in shown and k[0] != "mailboxes"}
    assert not undocumented, f"keys missing from settings.toml: {sorted(undocumented)}"
    unknown = {k for k in shown if k not in keys}
    assert not unknown, f"settings.toml shows keys that do not exist: {sorted(unknown)}"
    for (table, key), default in keys.items():
        if table == "mailboxes" or default in (None, "", ()):
            continue  # no default: the file shows an example
        value = shown[(table, key)][0]
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        assert value == default or (isinstance(default, tuple) and list(default) == value), (
            f"settings.toml shows {table}.{key} = {value!r}, the default is {default!r}")
    assert {key for table, key in shown if table == "mailboxes"} <= imap_keys


def test_example_mailboxes_are_valid(tmp_path: Path) -> None:
    """Uncommenting the example [[mailboxes]] gives valid settings."""
    text = (REPO / "settings.toml").read_text(encoding="utf-8")
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("#[[mailboxes]]"):
            inside = True
        elif not line.startswith("#"):
            inside = False
        if inside and (line.startswith("#[[") or _KEY_LINE.match(line)):
            line = line[1:]
        lines.append(line)
    password = write(tmp_path / "pw", "x")
    text = "\n".join(lines).replace("/etc/imap-bouncer/lists-password", str(password))
    settings = load_text(tmp_path, text)
    assert [m.name for m in settings.all_mailboxes] == ["lists", "shop"]
    assert settings.all_mailboxes[1].token_command[0] == "/usr/local/bin/get-imap-token"
