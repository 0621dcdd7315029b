"""`zoo push`: publish a model directory on the Hugging Face Hub."""
from __future__ import annotations

import click


@click.command("push")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@click.argument("repo_id", metavar="ORG/REPO")
@click.option("--private", is_flag=True, help="Create the repository private (no effect on one that exists).")
@click.option("--revision", metavar="BRANCH", help="Commit to this branch (created from main if missing). Default: main.")
@click.option("-m", "--message", help="The commit message. Default: the architecture, base model and metrics.")
@click.option("--token", help="A Hub token with write access. Default: HF_TOKEN, or the token `hf auth login` saved.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def push_command(
    folder: str, repo_id: str, private: bool, revision: str | None, message: str | None, token: str | None, quiet: bool
) -> None:
    """Upload the model directory DIR to the Hub repository ORG/REPO and print the commit's URL.

    DIR is checked first: every file config.json lists must match its recorded size and sha256,
    or nothing is uploaded. Only config.json, those files and README.md are uploaded; anything
    else in DIR (checkpoints, plots, .DS_Store) stays local. The repository is created if it
    does not exist. HF_ENDPOINT chooses another Hub.

    \b
    Examples:
      zoo push ./lite0-faces my-org/lite0-faces
      zoo push ./lite0-faces my-org/lite0-faces --revision experiment-2 --private
      zoo predict hf://my-org/lite0-faces face.png
    """
    from huggingface_hub.utils import disable_progress_bars

    from zoo.hub import hub_endpoint
    from zoo.hub_upload import push

    if quiet:
        disable_progress_bars()
    url = push(folder, repo_id, private=private or None, revision=revision, commit_message=message, token=token)
    if not quiet:
        where = f"{hub_endpoint()}/{repo_id}" + (f"/tree/{revision}" if revision else "")
        click.echo(f"pushed {folder} to {where}", err=True)
    click.echo(url)


COMMANDS = [push_command]
