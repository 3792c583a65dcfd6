"""``sluice create project``, ``sluice onboard service``, ``sluice add-resource``, ``sluice set sli-provider``.

The CLI imports every command module to build its parser, so each command imports the services
only it uses (the shipyard, the canary check, the SLI configuration …) when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sluice.cli import common
from sluice.core.validation import cluster_name_problems, dns_label_problem
from sluice.errors import ValidationError
from sluice.services.documents import load_slo
from sluice.services.yamldoc import load_document


def register(subparsers: Any) -> None:
    create = subparsers.add_parser("create", help="create a project")
    create_sub = create.add_subparsers(dest="what", metavar="WHAT", required=True)
    project = create_sub.add_parser("project", help="create (or update) a project from a shipyard file")
    project.add_argument("name")
    project.add_argument("--shipyard", required=True, help="shipyard.yaml: the stages, in order")
    common.add_state_args(project)
    project.set_defaults(func=create_project)

    onboard = subparsers.add_parser("onboard", help="onboard a service into a project")
    onboard_sub = onboard.add_subparsers(dest="what", metavar="WHAT", required=True)
    service = onboard_sub.add_parser("service", help="onboard a service")
    service.add_argument("name")
    service.add_argument("--project", required=True)
    source = service.add_mutually_exclusive_group()
    source.add_argument("--chart", help="the service's Helm chart directory (Keptn's --chart), rendered with 'helm template' per stage")
    source.add_argument("--manifests", help="a folder of the service's Kubernetes manifests (plain YAML, or a kustomization)")
    common.add_state_args(service)
    service.set_defaults(func=onboard_service)

    resource = subparsers.add_parser(
        "add-resource", help="store a resource (slo.yaml, sli.yaml, prometheus/sli.yaml, dynatrace/sli.yaml, tests.yaml)")
    resource.add_argument("--project", required=True)
    resource.add_argument("--stage", default="")
    resource.add_argument("--service", default="")
    resource.add_argument("--resource", required=True, help="the local file")
    resource.add_argument("--resourceUri", dest="uri", help="name in the store (default: the file's name)")
    common.add_state_args(resource)
    resource.set_defaults(func=add_resource)

    setting = subparsers.add_parser("set", help="set a project setting")
    setting_sub = setting.add_subparsers(dest="what", metavar="WHAT", required=True)
    provider = setting_sub.add_parser(
        "sli-provider", help="the SLI provider of a project (builtin, prometheus, dynatrace, cloudwatch)")
    provider.add_argument("provider")
    provider.add_argument("--project", required=True)
    common.add_state_args(provider)
    provider.set_defaults(func=set_sli_provider)

    key = subparsers.add_parser("approver-key", help="the key that signs a project's approvals")
    key_sub = key.add_subparsers(dest="what", metavar="WHAT", required=True)
    for action, text in (("create", "create the key unless it exists"), ("rotate", "replace the key (old signatures stop working)")):
        sub = key_sub.add_parser(action, help=text)
        sub.add_argument("--project", required=True)
        common.add_state_args(sub)
        sub.set_defaults(func=approver_key, rotate=action == "rotate")

    prom = setting_sub.add_parser("prometheus", help="where a project's Prometheus is, and how to log in")
    prom.add_argument("--project", required=True)
    prom.add_argument("--url", required=True, help="e.g. http://prometheus.monitoring:9090")
    prom.add_argument("--token-file", help="a file holding a bearer token")
    prom.add_argument("--user", help="basic-auth user (with --password-file)")
    prom.add_argument("--password-file", help="a file holding the basic-auth password")
    prom.add_argument("--insecure-skip-tls-verify", action="store_true")
    common.add_state_args(prom)
    prom.set_defaults(func=set_prometheus)

    dyn = setting_sub.add_parser("dynatrace", help="a project's Dynatrace tenant and API token (kept in the secret store)")
    dyn.add_argument("--project", required=True)
    dyn.add_argument("--tenant", required=True, help="e.g. https://abc123.live.dynatrace.com")
    dyn.add_argument("--token-file", required=True, help="a file holding an API token with the metrics.read scope")
    common.add_state_args(dyn)
    dyn.set_defaults(func=set_dynatrace)


def create_project(args: argparse.Namespace) -> int:
    from sluice.core.shipyard import parse_shipyard

    if problem := dns_label_problem("project name", args.name):
        raise ValidationError("create project", [problem])
    text = common.read_file(args.shipyard, "--shipyard")
    doc = load_document(text, args.shipyard)
    # on a cluster each stage is namespace <project>-<stage>: refuse names it could not have
    if problems := cluster_name_problems(args.name, [s.name for s in parse_shipyard(doc, args.shipyard).stages]):
        raise ValidationError("create project", problems)
    _check_canary(args, doc, args.shipyard)
    info = common.records(args).create_project(args.name, text, doc)
    stages = " → ".join(f"{s.name} ({s.deployment_strategy.value})" for s in info.shipyard.stages)
    print(f"Project {args.name} created: {stages}")
    _ensure_approver_key(args, args.name, rotate=False)
    return 0


def _check_canary(args: argparse.Namespace, doc: object, source: str) -> None:
    """A shipyard with canary stages is refused when the deployment backend cannot split by weight."""
    from sluice.core.shipyard import parse_shipyard
    from sluice.core.strategies import DeploymentStrategy

    shipyard = parse_shipyard(doc, source)
    if all(s.deployment_strategy is not DeploymentStrategy.CANARY for s in shipyard.stages):
        return
    from sluice.compose import build_backend
    from sluice.services.canary import check_canary_support

    settings = common.settings(args)
    check_canary_support(shipyard, build_backend(settings), settings.backend)


def _ensure_approver_key(args: argparse.Namespace, project: str, rotate: bool) -> None:
    from sluice.services.approvals import ensure_key, key_name

    written = ensure_key(common.secrets(args), project, rotate=rotate)
    state = "replaced" if rotate else ("created" if written else "kept")
    where = f"secret {key_name(project)}"
    if common.settings(args).state == "local":
        where += f" (a 0600 file under {common.settings(args).state_dir}/secrets)"
    print(f"Approver key of {project} {state}: {where}; whoever can read it can approve {project}'s promotions")


def approver_key(args: argparse.Namespace) -> int:
    """``sluice approver-key create|rotate --project P``: the key itself is never printed."""
    common.records(args).project(args.project)
    _ensure_approver_key(args, args.project, rotate=args.rotate)
    return 0


def onboard_service(args: argparse.Namespace) -> int:

    if problem := dns_label_problem("service name", args.name):
        raise ValidationError("onboard service", [problem])
    if problems := cluster_name_problems(args.project, services=[args.name]):
        raise ValidationError("onboard service", problems)
    records = common.records(args)
    workloads = _render_workload(args, records) if args.chart or args.manifests else {}
    for stage, workload in workloads.items():  # every stage rendered and checked: store, then onboard
        records.put_workload(args.project, stage, args.name, workload)
    records.onboard(args.project, args.name)
    print(f"Service {args.name} onboarded in project {args.project}")
    if workloads:
        first = next(iter(workloads.values()))
        kinds = ", ".join(f"{o.get('kind')} {o.get('metadata', {}).get('name')}" for o in first.objects)
        print(f"Workload from {first.source} for stages {', '.join(workloads)}: {kinds}")
        settings = common.settings(args)
        if settings.backend in ("kubernetes", "knative"):
            print(f"The {settings.backend} backend derives {args.name}-primary/{args.name}-canary from it "
                  "(pod template kept, image replaced) and applies the other objects once per stage")
        else:
            print(f"The {settings.backend} backend runs {args.name} from its image map ({settings.image_map}); "
                  "the workload is used by the kubernetes and knative backends")
    return 0


def _render_workload(args: argparse.Namespace, records: Any) -> dict[str, Any]:
    """The user's workload rendered and checked for every stage of the project (nothing is
    stored before every stage passed): ``--chart`` with ``helm template`` per stage namespace,
    ``--manifests`` once (plain files or ``kubectl kustomize``)."""
    from sluice.services.workloads import find_helm, prepare, render_chart, render_manifests

    project = records.project(args.project)
    settings = common.settings(args)
    out: dict[str, Any] = {}
    manifests = render_manifests(Path(args.manifests), settings.kubectl) if args.manifests else None
    helm = find_helm(settings.helm) if args.chart else ""
    for stage in project.shipyard.stages:
        namespace = f"{args.project}-{stage.name}"
        if manifests is not None:
            objects, source = manifests, f"--manifests {args.manifests}"
        else:
            objects, source = render_chart(helm, Path(args.chart), args.name, namespace), f"--chart {args.chart}"
        out[stage.name] = prepare(objects, service=args.name, namespace=namespace, platform=settings.backend, source=source)
    return out


def add_resource(args: argparse.Namespace) -> int:
    from sluice.core.resources import check_resource_uri

    uri = check_resource_uri(args.uri or Path(args.resource).name)  # before reading or storing anything
    text = common.read_file(args.resource, "--resource")
    records = common.records(args)
    records.project(args.project)
    if uri == "slo.yaml":
        load_slo(text, args.resource)  # refuse an invalid SLO now rather than at the gate
    elif uri.endswith("sli.yaml"):
        from sluice.adapters.sli import SECTIONS
        from sluice.services.sli_config import load_sli_config

        load_sli_config(text, f"{args.resource} ({uri})", SECTIONS)  # likewise an invalid SLI file
    name = records.put_resource(args.project, args.stage, args.service, uri, text)
    where = "/".join(p for p in (args.project, args.stage, args.service) if p)
    print(f"Resource {uri} added to {where} ({name})")
    return 0


def set_sli_provider(args: argparse.Namespace) -> int:
    from sluice.adapters.sli import PROVIDERS

    if args.provider not in PROVIDERS:
        raise ValidationError("sli-provider", [f"{args.provider!r} is no SLI provider: expected one of {', '.join(sorted(PROVIDERS))}"])
    records = common.records(args)
    records.project(args.project)
    records.set_project_setting(args.project, "sli-provider", args.provider)
    print(f"Project {args.project} takes its SLIs from {args.provider}")
    return 0


def set_prometheus(args: argparse.Namespace) -> int:
    """Store the project's Prometheus connection; secrets come from files, never from flags."""
    from sluice.adapters.sli.prometheus import connection_record
    from sluice.services.sli_config import store_connection

    data = {"url": args.url}
    if args.token_file:
        data["token"] = common.read_file(args.token_file, "--token-file").strip()
    if args.user:
        data["user"] = args.user
        data["password"] = common.read_file(args.password_file, "--password-file").strip() if args.password_file else ""
    if args.insecure_skip_tls_verify:
        data["insecure_skip_tls_verify"] = "true"
    records = common.records(args)
    records.project(args.project)
    connection = connection_record(args.project, data)  # ConfigurationError before anything is written
    store_connection(records, common.secrets(args), args.project, connection)
    login = "bearer token" if args.token_file else ("basic auth" if args.user else "no login")
    print(f"Project {args.project} reads Prometheus at {args.url} ({login})")
    return 0


def set_dynatrace(args: argparse.Namespace) -> int:
    """Store the project's Dynatrace tenant and token in the secret store; the token comes from a file."""
    from sluice.adapters.sli.dynatrace import connection_record, secret_name
    from sluice.services.sli_config import store_connection

    token = common.read_file(args.token_file, "--token-file").strip()
    records = common.records(args)
    records.project(args.project)
    store_connection(records, common.secrets(args), args.project, connection_record(args.project, args.tenant, token))
    print(f"Project {args.project} reads Dynatrace at {args.tenant.strip().rstrip('/')} (API token in secret {secret_name(args.project)})")
    return 0
