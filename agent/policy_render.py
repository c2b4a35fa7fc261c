"""``privacy-agent policy render --config FILE``: the notice, the record of processing activities (GDPR Art. 30)
and the skeleton impact assessment (PIPL Art. 55), offline, from the config the daemon would enforce.

Adapter only: read and check the config (the daemon's own loader, so a config the daemon refuses is refused here
too), build the documents with :mod:`agent.policy_notice`, print them. Corrections a user recorded on a device
(``privacyctl correct region``) are in that device's ledger, not in the config: ``privacyctl policy show`` on the
device includes them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.config import load_config
from agent.policy_notice import DOCUMENTS, check_format, render

CHOICES = ("all", *DOCUMENTS)
TITLES = {"notice": "Privacy notice", "ropa": "Record of processing activities (GDPR Art. 30)",
          "piia": "Personal information impact assessment (PIPL Art. 55), skeleton"}


def render_documents(policy_path: Path, fmt: str, document: str) -> str:
    check_format(fmt)
    # The port is never opened here; giving one lets a file of only the policy tables render as well.
    policy = load_config(policy_path, port="offline://render").policy
    chosen = list(DOCUMENTS) if document == "all" else [document]
    trees = {name: DOCUMENTS[name](policy) for name in chosen}
    if fmt == "json":
        value = trees if document == "all" else trees[document]
        return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    parts = []
    for name, tree in trees.items():
        body = render(tree, fmt)
        if name != "notice":  # the notice has its own title line
            title = TITLES[name]
            body = (f"# {title}\n\n" if fmt == "markdown" else f"{title}\n{'=' * len(title)}\n") + body
        parts.append(body)
    return "\n\n".join(parts)


def render_command(args: argparse.Namespace) -> int:
    print(render_documents(Path(args.config), args.format, args.document), file=sys.stdout)
    return 0
