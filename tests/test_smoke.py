from digest.cli import main


def test_cli_group_has_help() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Daily research-paper digests" in result.output
