#!/usr/bin/python3
"""Tests of deploy/: the Kubernetes manifests, the alert rules, the Grafana
dashboard and the Dockerfile, statically and against a live wfm-server
scraped by a real Prometheus on loopback.

Run one class per CTest entry (tests/deploy/CMakeLists.txt):
    deploy_test.py ManifestTest
with WFM_SOURCE_DIR, WFM_SERVER_BIN, WFM_CLI_BIN, WFM_TRAIN_BIN set.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import k8s_schema  # noqa: E402
import live  # noqa: E402
import promql_names  # noqa: E402

SOURCE = os.environ.get("WFM_SOURCE_DIR", os.path.normpath(os.path.join(HERE, "..", "..")))
DEPLOY = os.path.join(SOURCE, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
RULES = os.path.join(DEPLOY, "prometheus", "rules.yml")
DASHBOARD = os.path.join(DEPLOY, "grafana", "wfm-dashboard.json")
DOCKERFILE = os.path.join(DEPLOY, "Dockerfile")
SERVER_BIN = os.environ.get("WFM_SERVER_BIN", "")
CLI_BIN = os.environ.get("WFM_CLI_BIN", "")
TRAIN_BIN = os.environ.get("WFM_TRAIN_BIN", "")

REQUIRED_ALERTS = {"WfmGenerationStalled", "WfmModelSamplingStalled", "WfmHighErrorRatio",
                   "WfmTrainingJobFailed", "WfmServerDown"}
HEALTH_SERVICE = "wfm.v1.WfmService"
# The server flags whose value in the ConfigMap differs from the binary's
# default on purpose: replicas close connections after 5 minutes so that
# clients balancing over the headless Service re-resolve and reach new pods.
DEPLOYMENT_OVERRIDES = {"--max-connection-age-seconds": "300"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Series Prometheus makes itself (allowed in the alert rules only).
SYNTHETIC = {"up"}


def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def require_tool(test, name):
    path = shutil.which(name)
    test.assertIsNotNone(path, f"{name} is not installed (deploy/setup.sh installs it)")
    return path


def binary_flags(binary):
    """The --flags a binary's --help lists."""
    result = run([binary, "--help"])
    if result.returncode != 0:
        raise RuntimeError(f"{binary} --help exited {result.returncode}: {result.stderr}")
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", result.stdout))


def dashboard_targets():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    targets = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            targets.append((panel["title"], t["expr"]))
    return dash, targets


def rule_expressions():
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in rules["groups"] for r in g["rules"]]


# ---------------------------------------------------------------- manifests

def kubectl():
    """kubectl on PATH; the manifests are rendered with `kubectl kustomize`
    and nothing else."""
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError(
            "kubectl is not installed: the Kubernetes manifests are rendered with "
            "`kubectl kustomize` (deploy/setup.sh installs Debian's kubernetes-client "
            "where no kubectl is on PATH)")
    return path


def kubectl_version():
    """The kubectl in use, its version and (where it reports one) its
    kustomize's, on one line."""
    result = run([kubectl(), "version", "--client", "-o", "json"])
    try:
        info = json.loads(result.stdout)
    except ValueError:
        return f"{kubectl()}: {(result.stdout + result.stderr).strip()}"
    line = f"{kubectl()} {info.get('clientVersion', {}).get('gitVersion', '(no version)')}"
    if "kustomizeVersion" in info:
        line += f", kustomize {info['kustomizeVersion']}"
    return line


def render_kustomization(directory):
    """The objects `kubectl kustomize DIRECTORY` renders."""
    result = run([kubectl(), "kustomize", directory])
    if result.returncode != 0:
        raise RuntimeError(
            f"kubectl kustomize {directory} exited {result.returncode}: "
            f"{result.stderr.strip()}\n(kubectl: {kubectl_version()}; the kustomizations "
            "are written for kustomize 2.0.3, embedded in kubectl 1.14 to 1.20, and later)")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def server_flag_defaults(binary):
    """{flag: default} of the options whose --help line shows a default
    ("--max-jobs INT=1")."""
    result = run([binary, "--help"])
    if result.returncode != 0:
        raise RuntimeError(f"{binary} --help exited {result.returncode}: {result.stderr}")
    return dict(re.findall(r"^\s+(--[a-z][a-z0-9-]*) [A-Z]+=(\S+)", result.stdout, re.M))


def same_value(a, b):
    """Flag values compared as numbers where both are numbers ("30" and
    "30.0"), else as text."""
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None
                                                           or o["metadata"]["name"] == name)]
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def selects(selector, labels):
    match = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


class ManifestTest(unittest.TestCase):
    """The objects `kubectl kustomize` renders from deploy/k8s."""
    DIRS = ["base", "training", "overlays/example"]
    COMMON_LABELS = {"app.kubernetes.io/name": "wfm", "app.kubernetes.io/part-of": "wfm"}

    # The fields kustomize 2.0.3 (kubectl 1.14 to 1.20, Debian 12's
    # kubernetes-client) reads whose meaning current kustomize keeps; it
    # rejects any other, e.g. labels (kustomize 4.1) or patches with path.
    KUSTOMIZE_2_FIELDS = {"apiVersion", "kind", "namespace", "namePrefix", "nameSuffix",
                          "commonLabels", "commonAnnotations", "resources", "bases", "crds",
                          "images", "configMapGenerator", "secretGenerator", "generatorOptions",
                          "patchesStrategicMerge", "patchesJson6902", "configurations", "vars"}

    @classmethod
    def setUpClass(cls):
        print(f"kubectl: {kubectl_version()}", file=sys.stderr)
        cls.rendered = {}
        for d in cls.DIRS:
            objects = render_kustomization(os.path.join(K8S, d))
            print(f"{d}: {len(objects)} objects via kubectl kustomize", file=sys.stderr)
            cls.rendered[d] = objects
        cls.example = cls.rendered["overlays/example"]

    def test_yamllint_passes_on_every_manifest(self):
        require_tool(self, "yamllint")
        files = [os.path.join(root, f) for root, _, names in os.walk(DEPLOY) for f in names
                 if f.endswith((".yaml", ".yml"))]
        self.assertGreaterEqual(len(files), 20)
        result = run(["yamllint", "--strict", "-c", os.path.join(DEPLOY, ".yamllint"), *files])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_kustomizations_use_only_what_kustomize_2_reads(self):
        # Whatever kubectl renders here, the same files must render with
        # kustomize 2.0.3, which reads directories only under bases.
        for d in self.DIRS:
            with self.subTest(d):
                with open(os.path.join(K8S, d, "kustomization.yaml")) as f:
                    k = yaml.safe_load(f)
                self.assertLessEqual(set(k), self.KUSTOMIZE_2_FIELDS)
                for entry in k.get("resources", []):
                    self.assertTrue(os.path.isfile(os.path.join(K8S, d, entry)), entry)
                for entry in k.get("bases", []):
                    self.assertTrue(os.path.isdir(os.path.join(K8S, d, entry)), entry)
                for entry in k.get("patchesStrategicMerge", []):
                    self.assertIsInstance(entry, str)

    def test_each_kustomization_renders_exactly_its_objects(self):
        def names(objects):
            return sorted((o["kind"], re.sub(r"-[a-z0-9]{10}$", "-HASH", o["metadata"]["name"])
                           if o["kind"] == "Secret" else o["metadata"]["name"])
                          for o in objects)
        server = [("ConfigMap", "wfm-server-config"), ("HorizontalPodAutoscaler", "wfm-server"),
                  ("NetworkPolicy", "wfm-server"), ("PersistentVolumeClaim", "wfm-repository"),
                  ("PodDisruptionBudget", "wfm-server"), ("PrometheusRule", "wfm"),
                  ("Service", "wfm-server"), ("Service", "wfm-server-headless"),
                  ("ServiceAccount", "wfm"), ("ServiceMonitor", "wfm-server"),
                  ("StatefulSet", "wfm-server")]
        training = [("ConfigMap", "wfm-train-config"), ("Job", "wfm-train"),
                    ("NetworkPolicy", "wfm-train"), ("Service", "wfm-train")]
        self.assertEqual(names(self.rendered["base"]), sorted(server))
        self.assertEqual(names(self.rendered["training"]), sorted(training))
        self.assertEqual(names(self.example),
                         sorted(server + training + [("Namespace", "wfm"), ("Secret", "wfm-auth-HASH")]))
        # The generated Secret's name carries the hash of its content.
        secret = one(self.example, "Secret")
        self.assertRegex(secret["metadata"]["name"], r"^wfm-auth-[a-z0-9]{10}$")

    def test_labels_on_every_object_and_none_in_selectors(self):
        for d in ("base", "training"):
            for obj in self.rendered[d]:
                with self.subTest(f"{d}: {obj['kind']}/{obj['metadata']['name']}"):
                    labels = obj["metadata"].get("labels", {})
                    self.assertLessEqual(self.COMMON_LABELS.items(), labels.items())
                    self.assertNotIn("release", labels)
        selectors = []
        for obj in self.example:
            with self.subTest(f"example: {obj['kind']}/{obj['metadata']['name']}"):
                labels = obj["metadata"].get("labels", {})
                # The Prometheus Operator selects the example's objects by release.
                self.assertEqual(labels.get("release"), "prometheus")
                if obj["kind"] not in ("Namespace", "Secret"):
                    self.assertLessEqual(self.COMMON_LABELS.items(), labels.items())
            spec = obj.get("spec", {})
            if obj["kind"] in ("StatefulSet", "PodDisruptionBudget"):
                selectors.append(spec["selector"]["matchLabels"])
            elif obj["kind"] == "Service":
                selectors.append(spec["selector"])
            elif obj["kind"] == "NetworkPolicy":
                selectors.append(spec["podSelector"]["matchLabels"])
            elif obj["kind"] == "ServiceMonitor":
                selectors.append(spec["selector"]["matchLabels"])
            if obj["kind"] in ("StatefulSet", "Job"):
                selectors.append(spec["template"]["metadata"]["labels"])
        self.assertEqual(len(selectors), 10)
        for selector in selectors:
            # The overlay adds release to metadata only, not to selectors
            # (a StatefulSet's selector cannot change after creation).
            self.assertNotIn("release", selector)
            self.assertEqual(selector.get("app.kubernetes.io/name"), "wfm", selector)

    def test_example_overlay_applies_its_image_patches_and_namespace(self):
        images = [c["image"] for o in self.example if o["kind"] in ("StatefulSet", "Job")
                  for c in o["spec"]["template"]["spec"]["containers"]]
        self.assertEqual(images, ["registry.example.com/wfm:0.1.0"] * 2)
        base_images = [c["image"] for o in self.rendered["base"] + self.rendered["training"]
                       if o["kind"] in ("StatefulSet", "Job")
                       for c in o["spec"]["template"]["spec"]["containers"]]
        self.assertEqual(base_images, ["wfm:0.1.0"] * 2)
        sts = one(self.example, "StatefulSet", "wfm-server")
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(one(self.rendered["base"], "StatefulSet")["spec"]["replicas"], 2)
        resources = sts["spec"]["template"]["spec"]["containers"][0]["resources"]
        self.assertEqual(resources["requests"], {"cpu": "4", "memory": "8Gi"})
        self.assertEqual(resources["limits"], {"cpu": "8", "memory": "16Gi"})
        pvc = one(self.example, "PersistentVolumeClaim", "wfm-repository")
        self.assertEqual(pvc["spec"]["storageClassName"], "nfs-client")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "200Gi")
        hpa = one(self.example, "HorizontalPodAutoscaler", "wfm-server")
        self.assertEqual((hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]), (3, 12))
        self.assertEqual(one(self.example, "Namespace")["metadata"]["name"], "wfm")
        self.assertEqual(base64.b64decode(one(self.example, "Secret")["data"]["token"]),
                         b"replace-with-a-long-random-token")

    def test_server_config_map_holds_the_servers_defaults(self):
        self.assertTrue(SERVER_BIN, "WFM_SERVER_BIN not set")
        defaults = server_flag_defaults(SERVER_BIN)
        self.assertIn("--max-jobs", defaults)
        sts, pod, c = self.server_container()
        cm = one(self.example, "ConfigMap", "wfm-server-config")["data"]
        used = set()
        for arg in c["args"]:
            flag, _, value = arg.partition("=")
            m = re.fullmatch(r"\$\((\w+)\)", value)
            if not m or m.group(1) not in cm:
                continue
            used.add(m.group(1))
            with self.subTest(flag):
                self.assertIn(flag, defaults)
                expected = DEPLOYMENT_OVERRIDES.get(flag, defaults[flag])
                self.assertTrue(same_value(cm[m.group(1)], expected),
                                f"{flag}: ConfigMap {cm[m.group(1)]}, expected {expected}")
        # Every key is passed to a flag.
        self.assertEqual(used, set(cm))
        self.assertEqual(len(used), 14)
        # The training ConfigMap's keys all reach wfm-train's flags too.
        job = one(self.example, "Job")["spec"]["template"]["spec"]["containers"][0]
        train_cm = one(self.example, "ConfigMap", "wfm-train-config")["data"]
        referenced = {v for a in job["args"] for v in re.findall(r"\$\((\w+)\)", a)}
        self.assertLessEqual(set(train_cm), referenced)
        self.assertEqual(train_cm["WFM_TRAIN_FAMILY"], "pointcloud")

    def test_ports_of_the_services_and_containers(self):
        sts, pod, c = self.server_container()
        self.assertEqual({p["name"]: (p["containerPort"], p["protocol"]) for p in c["ports"]},
                         {"grpc": (50051, "TCP"), "metrics": (9464, "TCP")})
        headless = one(self.example, "Service", "wfm-server-headless")
        self.assertEqual([p["port"] for p in headless["spec"]["ports"]], [50051])
        job_pod = one(self.example, "Job")["spec"]["template"]["spec"]
        master = {e["name"]: e.get("value") for e in job_pod["containers"][0]["env"]}["MASTER_PORT"]
        train_svc = one(self.example, "Service", "wfm-train")
        self.assertIn(int(master), [p["port"] for p in train_svc["spec"]["ports"]])

    def test_every_object_matches_its_schema(self):
        for d, objects in self.rendered.items():
            for obj in objects:
                with self.subTest(f"{d}: {obj['kind']}/{obj['metadata']['name']}"):
                    self.assertEqual(k8s_schema.validate(obj), [])

    def test_schema_check_catches_typos(self):
        sts = json.loads(json.dumps(one(self.example, "StatefulSet")))
        sts["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
        sts["spec"]["replicas"] = "3"
        errors = k8s_schema.validate(sts)
        self.assertTrue(any("readinessprobe: unknown field" in e for e in errors), errors)
        self.assertTrue(any("replicas: expected integer" in e for e in errors), errors)

    def test_example_has_every_kind(self):
        kinds = {o["kind"] for o in self.example}
        self.assertLessEqual({"StatefulSet", "Service", "ConfigMap", "Secret",
                              "PersistentVolumeClaim", "PodDisruptionBudget",
                              "HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor",
                              "PrometheusRule", "Job"}, kinds)
        for obj in self.example:
            if obj["kind"] != "Namespace":
                self.assertEqual(obj["metadata"].get("namespace"), "wfm", obj["metadata"])

    def server_container(self):
        sts = one(self.example, "StatefulSet", "wfm-server")
        pod = sts["spec"]["template"]["spec"]
        return sts, pod, pod["containers"][0]

    def test_server_probes_security_and_resources(self):
        sts, pod, c = self.server_container()
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            self.assertEqual(c[probe]["grpc"], {"port": 50051, "service": HEALTH_SERVICE}, probe)
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        self.assertFalse(c["securityContext"]["allowPrivilegeEscalation"])
        self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])
        for kind in ("requests", "limits"):
            self.assertLessEqual({"cpu", "memory"}, set(c["resources"][kind]), kind)
        self.assertGreater(sts["spec"]["replicas"], 1)
        self.assertEqual(sts["spec"]["selector"]["matchLabels"],
                         {k: v for k, v in sts["spec"]["template"]["metadata"]["labels"].items()
                          if k in sts["spec"]["selector"]["matchLabels"]})

    def test_server_volumes(self):
        sts, pod, c = self.server_container()
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        # /data: the shared repository claim, ReadWriteMany.
        data = volumes[mounts["/data"]["name"]]
        pvc = one(self.example, "PersistentVolumeClaim", data["persistentVolumeClaim"]["claimName"])
        self.assertEqual(pvc["spec"]["accessModes"], ["ReadWriteMany"])
        self.assertIn("storageClassName", pvc["spec"])
        # Training jobs live on the shared repository too (each claimed by one
        # replica through a file lock): no volume of a replica's own.
        self.assertNotIn("/data/jobs", mounts)
        self.assertEqual(sts["spec"].get("volumeClaimTemplates", []), [])
        # /tmp: an emptyDir (read-only root).
        self.assertIn("emptyDir", volumes[mounts["/tmp"]["name"]])
        # The token: a Secret of the overlay, mounted read-only, its file passed
        # with --auth-token-file.
        token_flag = [a for a in c["args"] if a.startswith("--auth-token-file=")]
        self.assertEqual(len(token_flag), 1)
        token_path = token_flag[0].split("=", 1)[1]
        mount = mounts[os.path.dirname(token_path)]
        self.assertTrue(mount["readOnly"])
        secret_volume = volumes[mount["name"]]["secret"]
        secret = one(self.example, "Secret", secret_volume["secretName"])
        key = [i["key"] for i in secret_volume["items"] if i["path"] == os.path.basename(token_path)]
        self.assertEqual(len(key), 1)
        self.assertIn(key[0], secret["data"])

    def test_server_flags_exist_and_variables_are_defined(self):
        self.assertTrue(SERVER_BIN, "WFM_SERVER_BIN not set")
        flags = binary_flags(SERVER_BIN)
        sts, pod, c = self.server_container()
        self.assertEqual(c["command"], ["wfm-server"])
        defined = {e["name"] for e in c.get("env", [])}
        for env_from in c.get("envFrom", []):
            cm = one(self.example, "ConfigMap", env_from["configMapRef"]["name"])
            defined |= set(cm["data"])
            for k, v in cm["data"].items():
                self.assertNotEqual(v.strip(), "", k)
        for arg in c["args"]:
            with self.subTest(arg):
                self.assertIn(arg.split("=", 1)[0], flags)
                for var in re.findall(r"\$\((\w+)\)", arg):
                    self.assertIn(var, defined)
        listen = dict(a.split("=", 1) for a in c["args"] if "=" in a)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(int(listen["--listen"].rsplit(":", 1)[1]), ports["grpc"])
        self.assertEqual(int(listen["--metrics-listen"].rsplit(":", 1)[1]), ports["metrics"])
        threads = [e for e in c["env"] if e["name"] == "WFM_THREADS"][0]
        self.assertEqual(threads["valueFrom"]["resourceFieldRef"]["resource"], "limits.cpu")

    def test_services_pdb_hpa_and_network_policy_select_the_server(self):
        sts, pod, c = self.server_container()
        labels = sts["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        svc = one(self.example, "Service", "wfm-server")
        self.assertTrue(selects(svc["spec"]["selector"], labels))
        self.assertEqual({p["name"]: (p["port"], ports[p["targetPort"]]) for p in svc["spec"]["ports"]},
                         {"grpc": (50051, 50051), "metrics": (9464, 9464)})
        headless = one(self.example, "Service", sts["spec"]["serviceName"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        pdb = one(self.example, "PodDisruptionBudget")
        self.assertTrue(selects(pdb["spec"]["selector"], labels))
        hpa = one(self.example, "HorizontalPodAutoscaler")
        ref = hpa["spec"]["scaleTargetRef"]
        self.assertEqual((ref["kind"], ref["name"]), ("StatefulSet", sts["metadata"]["name"]))
        self.assertLessEqual(hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
        netpol = one(self.example, "NetworkPolicy", "wfm-server")
        self.assertTrue(selects(netpol["spec"]["podSelector"], labels))
        allowed = {p["port"] for rule in netpol["spec"]["ingress"] for p in rule["ports"]}
        self.assertEqual(allowed, {50051, 9464})

    def test_service_monitor_and_prometheus_rule(self):
        monitor = one(self.example, "ServiceMonitor")
        scraped = [s for s in self.example if s["kind"] == "Service"
                   and selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        self.assertEqual([s["metadata"]["name"] for s in scraped], ["wfm-server"])
        port_names = {p["name"] for p in scraped[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            self.assertIn(endpoint["port"], port_names)
            self.assertEqual(endpoint["path"], "/metrics")
        # The operator names the job after the Service: the rules' job="...".
        self.assertNotIn("jobLabel", monitor["spec"])
        jobs = set()
        for _, expr in rule_expressions():
            jobs |= set(re.findall(r'job="([^"]+)"', expr))
        self.assertEqual(jobs, {scraped[0]["metadata"]["name"]})
        rule = one(self.example, "PrometheusRule")
        with open(RULES) as f:
            self.assertEqual(rule["spec"]["groups"], yaml.safe_load(f)["groups"])

    def test_indexed_training_job_and_its_rendezvous(self):
        job = one(self.example, "Job")
        spec = job["spec"]
        self.assertEqual(spec["completionMode"], "Indexed")
        self.assertEqual(spec["completions"], spec["parallelism"])
        pod = spec["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e for e in c["env"]}
        self.assertEqual(int(env["WORLD_SIZE"]["value"]), spec["completions"])
        self.assertEqual(env["RANK"]["valueFrom"]["fieldRef"]["fieldPath"],
                         "metadata.annotations['batch.kubernetes.io/job-completion-index']")
        # Rank 0's pod is <job>-0, resolvable as <job>-0.<subdomain> through a
        # headless Service of that name selecting the Job's pods.
        self.assertEqual(env["MASTER_ADDR"]["value"],
                         f"{job['metadata']['name']}-0.{pod['subdomain']}")
        headless = one(self.example, "Service", pod["subdomain"])
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertTrue(headless["spec"]["publishNotReadyAddresses"])
        self.assertTrue(selects(headless["spec"]["selector"], spec["template"]["metadata"]["labels"]))
        self.assertIn(int(env["MASTER_PORT"]["value"]), [p["containerPort"] for p in c["ports"]])
        self.assertIn(pod["restartPolicy"], ("Never", "OnFailure"))
        # Training writes into the servers' shared repository.
        sts, server_pod, server = self.server_container()
        def claim(p, container, path):
            name = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == path][0]
            return [v for v in p["volumes"] if v["name"] == name][0]["persistentVolumeClaim"]["claimName"]
        data_dir = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--data-dir=")][0]
        self.assertEqual(claim(pod, c, data_dir), claim(server_pod, server, "/data"))
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
        # Retries continue from the last checkpoint.
        if spec.get("backoffLimit", 6) > 0:
            self.assertIn("--resume", c["args"])
        netpol = one(self.example, "NetworkPolicy", "wfm-train")
        self.assertTrue(selects(netpol["spec"]["podSelector"], spec["template"]["metadata"]["labels"]))

    def test_training_flags_exist_and_variables_are_defined(self):
        self.assertTrue(TRAIN_BIN, "WFM_TRAIN_BIN not set")
        flags = binary_flags(TRAIN_BIN)
        c = one(self.example, "Job")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["command"], ["wfm-train"])
        defined = {e["name"] for e in c["env"]}
        for env_from in c.get("envFrom", []):
            defined |= set(one(self.example, "ConfigMap", env_from["configMapRef"]["name"])["data"])
        for arg in c["args"]:
            with self.subTest(arg):
                self.assertIn(arg.split("=", 1)[0], flags)
                for var in re.findall(r"\$\((\w+)\)", arg):
                    self.assertIn(var, defined)


# ---------------------------------------------------------------- rules

# Synthetic series (one sample a minute) and what each alert expression
# must return at a time; each expression is wrapped as `(expr) * 0 + 1` so
# only the labels of the result matter.
RULE_CASES = [
    ("WfmGenerationStalled", [
        ('wfm_rpc_requests_total{job="wfm-server",method="SampleNiches",code="OK"}', "0+60x40"),
        ('wfm_generated_samples_total{job="wfm-server",model="m",family="pointcloud",version="1"}',
         "0+240x10 2400x30"),
        ('wfm_sampling_queue_depth{job="wfm-server",model="m"}', "0x40"),
    ], [("8m", []), ("25m", [{"job": "wfm-server"}])]),
    ("WfmGenerationStalled", [  # stuck requests: queued, none finishes
        ('wfm_rpc_requests_total{job="wfm-server",method="SampleNiches",code="OK"}', "5x40"),
        ('wfm_sampling_queue_depth{job="wfm-server",model="m"}', "0x10 3x30"),
    ], [("8m", []), ("25m", [{"job": "wfm-server"}])]),
    ("WfmGenerationStalled", [  # idle: no requests, no samples
        ('wfm_rpc_requests_total{job="wfm-server",method="ListModels",code="OK"}', "0+60x40"),
        ('wfm_sampling_queue_depth{job="wfm-server",model="m"}', "0x40"),
    ], [("25m", [])]),
    ("WfmModelSamplingStalled", [
        # "a" was never sampled: its series are at 0 from the start.
        ('wfm_sampling_queue_depth{job="wfm-server",model="a"}', "0x10 3x30"),
        ('wfm_generated_samples_total{job="wfm-server",model="a",family="pointcloud",version="1"}', "0x40"),
        # "b" is busy and returns samples; "c" is idle.
        ('wfm_sampling_queue_depth{job="wfm-server",model="b"}', "2x40"),
        ('wfm_generated_samples_total{job="wfm-server",model="b",family="gaussian",version="1"}', "0+100x40"),
        ('wfm_sampling_queue_depth{job="wfm-server",model="c"}', "0x40"),
        ('wfm_generated_samples_total{job="wfm-server",model="c",family="pointcloud",version="1"}', "0x40"),
    ], [("8m", []), ("25m", [{"job": "wfm-server", "model": "a"}])]),
    ("WfmSamplingQueueWaitHigh", [
        # "a" low: requests wait 30-60 s from minute 10; "a" high and "b"
        # normal wait under a second throughout.
        *[('wfm_sampling_queue_wait_seconds_bucket{job="wfm-server",model="a",priority="low",'
           f'le="{le}"}}', v) for le, v in (("1", "0x40"), ("30", "0x40"), ("60", "0x10 0+10x30"),
                                           ("+Inf", "0x10 0+10x30"))],
        *[(f'wfm_sampling_queue_wait_seconds_bucket{{job="wfm-server",model="{m}",priority="{p}",'
           f'le="{le}"}}', "0+10x40") for m, p in (("a", "high"), ("b", "normal"))
          for le in ("1", "30", "60", "+Inf")],
    ], [("8m", []), ("25m", [{"job": "wfm-server", "model": "a", "priority": "low"}])]),
    ("WfmHighErrorRatio", [
        ('wfm_rpc_requests_total{job="wfm-server",method="SampleNiches",code="OK"}', "0+54x40"),
        ('wfm_rpc_requests_total{job="wfm-server",method="SampleNiches",code="INTERNAL"}',
         "0x20 0+6x20"),
        # Client mistakes are not the server's errors.
        ('wfm_rpc_requests_total{job="wfm-server",method="GetModel",code="OK"}', "0+10x40"),
        ('wfm_rpc_requests_total{job="wfm-server",method="GetModel",code="NOT_FOUND"}', "0+50x40"),
    ], [("15m", []), ("35m", [{"job": "wfm-server", "method": "SampleNiches"}])]),
    ("WfmTrainingJobFailed", [
        ('wfm_training_jobs{job="wfm-server",instance="a",state="FAILED"}', "1x10 2x30"),
        ('wfm_training_jobs{job="wfm-server",instance="a",state="SUCCEEDED"}', "0+1x40"),
    ], [("5m", []), ("15m", [{"job": "wfm-server", "instance": "a", "state": "FAILED"}]),
        ("35m", [])]),
    ("WfmServerDown", [
        ('up{job="wfm-server",instance="a"}', "1x10 0x30"),
        ('up{job="other",instance="b"}', "0x40"),
    ], [("5m", []), ("15m", [{"job": "wfm-server", "instance": "a"}])]),
]


class RulesTest(unittest.TestCase):
    def test_promtool_accepts_the_rules_and_the_prometheus_rule(self):
        require_tool(self, "promtool")
        result = run(["promtool", "check", "rules", RULES])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        with open(os.path.join(K8S, "base", "prometheusrule.yaml")) as f:
            groups = yaml.safe_load(f)["spec"]["groups"]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "embedded.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": groups}, f)
            result = run(["promtool", "check", "rules", path])
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_prometheus_rule_is_generated_from_rules_yml(self):
        result = run([sys.executable, os.path.join(DEPLOY, "prometheus", "sync_rules.py"), "--check"])
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_required_alerts_exist(self):
        names = {name for name, _ in rule_expressions()}
        self.assertLessEqual(REQUIRED_ALERTS, names)

    def test_alert_expressions_on_synthetic_series(self):
        require_tool(self, "promtool")
        exprs = dict(rule_expressions())
        tests = []
        for alert, series, expectations in RULE_CASES:
            tests.append({
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {"expr": f"({exprs[alert]}) * 0 + 1", "eval_time": t,
                     "exp_samples": [{"labels": "{" + ",".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "}",
                                      "value": 1} for lab in expected]}
                    for t, expected in expectations],
            })
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "rules_test.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"rule_files": [RULES], "evaluation_interval": "1m",
                                "tests": tests}, f)
            result = run(["promtool", "test", "rules", path])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


# ---------------------------------------------------------------- dashboard

class DashboardTest(unittest.TestCase):
    def test_panels_cover_the_required_views(self):
        dash, targets = dashboard_targets()
        titles = " | ".join(p["title"] for p in dash["panels"]).lower()
        for words in ("samples/s", "points/s", "rpc rate", "error ratio", "latency",
                      "batch size", "queue depth", "training loss", "steps/s", "jobs by state",
                      "models loaded", "versions in memory", "loads and unloads"):
            self.assertIn(words, titles)
        exprs = " ".join(e for _, e in targets)
        for q in ("0.5", "0.95", "0.99"):
            self.assertIn(f"histogram_quantile({q},", exprs)
        self.assertIn("sum by (model, family) (rate(wfm_generated_samples_total", exprs)
        self.assertIn("sum by (model, family) (rate(wfm_generated_points_total", exprs)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(dash["templating"]["list"][0]["type"], "datasource")

    def test_every_expression_is_valid_promql(self):
        require_tool(self, "promtool")
        _, targets = dashboard_targets()
        rules = [{"record": f"dashboard:expr_{i}",
                  "expr": promql_names.substitute_grafana_variables(expr)}
                 for i, (_, expr) in enumerate(targets)]
        for _, expr in targets:
            promql_names.parse(promql_names.substitute_grafana_variables(expr))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dashboard.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            result = run(["promtool", "check", "rules", path])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


# ---------------------------------------------------------------- Dockerfile

def dockerfile_instructions():
    with open(DOCKERFILE) as f:
        text = f.read()
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        logical.append((word.upper(), rest.strip()))
        current = ""
    return logical


def dpkg_installed():
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Status}\t${Essential}\t${Priority}\t"
               "${Pre-Depends}\t${Depends}\n"], check=True).stdout
    packages = {}
    for line in out.splitlines():
        name, status, essential, priority, pre, deps = (line.split("\t") + [""] * 6)[:6]
        if "install ok installed" not in status:
            continue
        names = []
        for alternative in (pre + "," + deps).split(","):
            # "a (>= 1) | b": the first installed alternative.
            options = [re.sub(r"[\s(:].*", "", o.strip()) for o in alternative.split("|")]
            names.append([o for o in options if o])
        packages[name] = {"essential": essential == "yes", "priority": priority, "deps": names}
    return packages


def dpkg_owners(paths):
    """{path: the first package that owns it} for the paths dpkg knows."""
    if not paths:
        return {}
    owners = {}
    for line in run(["dpkg-query", "-S"] + sorted(paths)).stdout.splitlines():
        pkgs, sep, path = line.rpartition(": ")
        if sep and path in paths and not pkgs.startswith("diversion by"):
            owners[path] = pkgs.split(",")[0].strip().split(":")[0]
    return owners


def closure(roots, packages):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen or p not in packages:
            continue
        seen.add(p)
        for options in packages[p]["deps"]:
            installed = [o for o in options if o in packages]
            todo.extend(installed[:1])
    return seen


def cmake_folders(options):
    """Folders the top-level CMakeLists.txt adds (add_subdirectory, also in a
    foreach over literal items, and its module path) when configured with
    `options` ({name: bool}; other options at their defaults). Blocks under
    a condition that is not a plain option are taken as built."""
    with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
        text = f.read()
    values = {name: default == "ON"
              for name, default in re.findall(r'option\((\w+)\s+"[^"]*"\s+(ON|OFF)\)', text)}
    values.update(options)
    folders = set(re.findall(r"CMAKE_MODULE_PATH\s+\$\{CMAKE_CURRENT_SOURCE_DIR\}/([\w.-]+)", text))
    taken, loops = [], []  # per open if(): True, False or None (unknown)
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"if\((\w+)\)$", line)
        if m or line.startswith("if("):
            taken.append(values.get(m.group(1)) if m else None)
        elif line.startswith("else(") or line.startswith("elseif("):
            taken[-1] = None if taken[-1] is None or line.startswith("elseif(") else not taken[-1]
        elif line.startswith("endif("):
            taken.pop()
        elif line.startswith("foreach("):
            m = re.match(r"foreach\((\w+) IN ITEMS ([^)]*)\)", line)
            loops.append((m.group(1), m.group(2).split()) if m else None)
        elif line.startswith("endforeach("):
            loops.pop()
        elif False not in taken:
            m = re.match(r"add_subdirectory\(([^)\s]+)", line)
            if m:
                loop = loops[-1] if loops else None
                if loop and m.group(1) == "${%s}" % loop[0]:
                    folders.update(loop[1])
                else:
                    folders.add(m.group(1))
    return folders


class DockerfileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.instructions = dockerfile_instructions()
        stages, current = [], None
        for word, rest in cls.instructions:
            if word == "FROM":
                current = {"from": rest, "steps": []}
                stages.append(current)
            elif current is not None:
                current["steps"].append((word, rest))
        cls.stages = stages
        cls.runtime = stages[-1]

    def runtime_packages(self):
        runs = " ".join(rest for word, rest in self.runtime["steps"] if word == "RUN")
        m = re.search(r"apt-get install((?:\s+[-a-z0-9.+]+)+)", runs)
        self.assertIsNotNone(m, "the runtime stage installs no packages")
        return [w for w in m.group(1).split() if not w.startswith("-")]

    def json_args(self, word):
        found = [rest for w, rest in self.runtime["steps"] if w == word]
        self.assertEqual(len(found), 1, word)
        return found[0]

    def test_multi_stage_on_debian_12(self):
        self.assertEqual(len(self.stages), 2)
        self.assertRegex(self.stages[0]["from"], r"^debian:bookworm(\S*)? AS build$")
        self.assertRegex(self.runtime["from"], r"^debian:bookworm-slim AS runtime$")
        build_runs = " ".join(r for w, r in self.stages[0]["steps"] if w == "RUN")
        self.assertIn("deploy/setup.sh", build_runs)
        for target in ("wfm-server", "wfm-train", "--target wfm-server wfm wfm-train"):
            self.assertIn(target, build_runs)
        copies = [r for w, r in self.runtime["steps"] if w == "COPY"]
        self.assertTrue(any(c.startswith("--from=build ") for c in copies), copies)
        self.assertTrue(os.path.exists(DOCKERFILE + ".dockerignore"))

    def build_run(self):
        """The build stage's RUN that compiles."""
        found = [r for w, r in self.stages[0]["steps"] if w == "RUN" and "cmake --build" in r]
        self.assertEqual(len(found), 1, self.stages[0]["steps"])
        return found[0]

    def test_build_stage_keeps_ccache_in_a_cache_mount(self):
        run = self.build_run()
        m = re.match(r"--mount=(\S+)\s", run)
        self.assertIsNotNone(m, "the compiling RUN has no --mount")
        mount = dict(kv.split("=", 1) for kv in m.group(1).split(","))
        self.assertEqual(mount.get("type"), "cache", mount)
        self.assertIn("target", mount)
        self.assertIn(f"CCACHE_DIR={mount['target']} ", run)
        self.assertIn("-DWFM_USE_CCACHE=ON", run)
        self.assertNotIn("-DWFM_USE_CCACHE=OFF", run)

    def test_build_context_holds_every_folder_the_build_adds(self):
        run = self.build_run()
        options = {k: v == "ON" for k, v in re.findall(r"-D(\w+)=(ON|OFF)\b", run)}
        needed = cmake_folders(options) | {"CMakeLists.txt", "deploy/setup.sh"}
        # The parser sees the layers, the module path and what the options leave out.
        self.assertLessEqual({"proto", "model", "server", "train", "client", "cmake"}, needed)
        self.assertTrue(needed.isdisjoint({"tests", "bench", "fuzz"}), needed)
        with open(DOCKERFILE + ".dockerignore") as f:
            patterns = [line.strip() for line in f
                        if line.strip() and not line.lstrip().startswith("#")]
        # An allow-list: everything out, then the sources back in.
        self.assertEqual(patterns[0], "**")
        included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
        self.assertEqual(sorted(needed - included), [],
                         "deploy/Dockerfile.dockerignore leaves these out of the build context")

    def test_built_binaries_are_where_the_dockerfile_copies_them_from(self):
        build_runs = " ".join(r for w, r in self.stages[0]["steps"] if w == "RUN")
        for binary in (SERVER_BIN, CLI_BIN, TRAIN_BIN):
            self.assertTrue(binary and os.path.exists(binary), binary)
            build_dir = os.path.dirname(os.path.dirname(binary))
            relative = os.path.relpath(binary, os.environ.get("WFM_BUILD_DIR", build_dir))
            self.assertIn("/build/" + relative, build_runs)

    def test_runtime_packages_exist_in_debian_12_and_are_not_dev(self):
        packages = dpkg_installed()
        for name in self.runtime_packages():
            with self.subTest(name):
                self.assertFalse(name.endswith("-dev"))
                if name not in packages:
                    result = run(["apt-cache", "show", name])
                    self.assertEqual(result.returncode, 0, f"{name}: not a Debian 12 package")
        self.assertIn("libopenblas0-pthread", self.runtime_packages())

    def test_runtime_packages_provide_every_linked_library(self):
        """ldd of the three binaries -> owning packages, each in the closure
        of the runtime stage's packages (or of the base image's required
        packages)."""
        packages = dpkg_installed()
        installed = closure(self.runtime_packages(), packages)
        base = closure([p for p, i in packages.items()
                        if i["essential"] or i["priority"] == "required"] + ["apt"], packages)
        libraries = set()
        for binary in (SERVER_BIN, CLI_BIN, TRAIN_BIN):
            out = run(["ldd", binary], check=True).stdout
            self.assertNotIn("not found", out)
            libraries |= set(re.findall(r"=> (/\S+)", out))
        # One dpkg-query for all real paths, one more for the paths as ldd
        # names them (a merged /usr makes either the one dpkg knows).
        real = {lib: os.path.realpath(lib) for lib in libraries}
        found = dpkg_owners(set(real.values()))
        found.update(dpkg_owners({lib for lib in libraries if real[lib] not in found}))
        owners = {}
        for lib in sorted(libraries):
            pkg = found.get(real[lib], found.get(lib))
            self.assertIsNotNone(pkg, f"{lib}: no Debian package owns it")
            owners[lib] = pkg
        missing = sorted({f"{pkg} ({lib})" for lib, pkg in owners.items()
                          if pkg not in installed and pkg not in base})
        self.assertEqual(missing, [], "runtime stage lacks these libraries' packages")

    def test_user_volume_ports_healthcheck_and_entrypoint(self):
        user = self.json_args("USER")
        self.assertNotIn(user.split(":")[0], ("0", "root"))
        self.assertEqual(json.loads(self.json_args("VOLUME")), ["/data"])
        self.assertEqual(self.json_args("EXPOSE").split(), ["50051", "9464"])
        health = self.json_args("HEALTHCHECK")
        cmd = json.loads(health.split("CMD", 1)[1])
        self.assertEqual(cmd, ["wfm", "health", "--server", "localhost:50051"])
        entry = json.loads(self.json_args("ENTRYPOINT"))
        self.assertEqual(entry[0], "wfm-server")
        pairs = dict(zip(entry[1::2], entry[2::2]))
        self.assertEqual(pairs, {"--data-dir": "/data", "--listen": "0.0.0.0:50051",
                                 "--metrics-listen": "0.0.0.0:9464"})
        self.assertLessEqual(set(pairs), binary_flags(SERVER_BIN))
        self.assertLessEqual({"health", "--server"}, set(re.findall(r"[-a-z]+", run([CLI_BIN, "--help"]).stdout)))
        # The pods run as the image's user.
        sts = one(render_kustomization(os.path.join(K8S, "base")), "StatefulSet")
        uid = sts["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
        self.assertEqual(user.split(":")[0], str(uid))


# ---------------------------------------------------------------- live

class LiveTest(unittest.TestCase):
    """A wfm-server with a trained tiny model, sampled from, scraped by a real
    Prometheus every second."""

    @classmethod
    def setUpClass(cls):
        for tool in ("promtool", "prometheus"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed (deploy/setup.sh installs it)")
        cls.tmp = tempfile.mkdtemp(prefix="wfm_deploy_live_")
        cls.server = live.Server(SERVER_BIN, os.path.join(cls.tmp, "data"))
        cls.server.wait_ready()
        cls.prometheus = live.Prometheus(
            cls.tmp, {"wfm-server": [f"127.0.0.1:{cls.server.metrics_port}"]}, [RULES])
        cls.prometheus.wait_ready()
        clouds = os.path.join(cls.tmp, "clouds.npz")
        live.write_clouds(clouds)
        addr = cls.server.address
        live.cli(CLI_BIN, addr, "upload", clouds, "--name", "shapes")
        live.cli(CLI_BIN, addr, "train", "--dataset", "shapes", "--model", "tiny",
                 *live.TINY_TRAINING, "--watch")
        cls.sample()
        # An unknown model: a NOT_FOUND code in the RPC metrics.
        live.cli(CLI_BIN, addr, "sample", "--model", "absent", "--num", "1",
                 "--out", os.path.join(cls.tmp, "none.npz"), check=False)
        cls.scrape = cls.server.scrape()

    @classmethod
    def sample(cls):
        live.cli(CLI_BIN, cls.server.address, "sample", "--model", "tiny", "--num", "4",
                 "--points", "8", "--steps", "4", "--out", os.path.join(cls.tmp, "s.npz"))

    @classmethod
    def tearDownClass(cls):
        cls.prometheus.stop()
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_promtool_check_metrics_on_a_live_scrape(self):
        result = subprocess.run(["promtool", "check", "metrics"], input=self.scrape,
                                capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_server_exports_the_documented_metrics(self):
        samples = promql_names.parse_exposition(self.scrape)
        for name, labels in {
                "wfm_rpc_requests_total": {"method", "code"},
                "wfm_rpc_latency_seconds_bucket": {"method", "code", "le"},
                "wfm_generated_samples_total": {"model", "family", "version"},
                "wfm_generated_points_total": {"model", "family", "version"},
                "wfm_sampling_batch_size_bucket": {"family", "le"},
                "wfm_sampling_queue_depth": {"model"},
                "wfm_sampling_queue_wait_seconds_bucket": {"model", "priority", "le"},
                "wfm_sampling_queue_timeouts_total": {"model"},
                "wfm_training_steps_total": {"model"},
                "wfm_training_loss": {"model"},
                "wfm_training_steps_per_second": {"model"},
                "wfm_training_jobs": {"state"},
                "wfm_models_loaded": set(),
                "wfm_build_info": {"version"}}.items():
            with self.subTest(name):
                self.assertIn(name, samples)
                self.assertEqual(samples[name], labels)

    def check_names(self, source, expr, allowed_synthetic):
        samples = promql_names.parse_exposition(self.scrape)
        uses = promql_names.parse(promql_names.substitute_grafana_variables(expr))
        self.assertTrue(uses.metrics, f"{source}: names no metric")
        known = set()
        for metric in uses.metrics:
            if metric in allowed_synthetic:
                known |= TARGET_LABELS
                continue
            self.assertIn(metric, samples, f"{source}: {metric} is not exported")
            known |= samples[metric] | TARGET_LABELS
            self.assertLessEqual(uses.matcher_labels[metric], samples[metric] | TARGET_LABELS,
                                 f"{source}: label of {metric}")
        self.assertLessEqual(uses.grouping_labels, known, f"{source}: grouping labels")

    def test_dashboard_and_rules_name_only_exported_metrics(self):
        _, targets = dashboard_targets()
        for title, expr in targets:
            with self.subTest(title):
                self.check_names(f"panel {title!r}", expr, set())
        for name, expr in rule_expressions():
            with self.subTest(name):
                self.check_names(f"rule {name}", expr, SYNTHETIC)

    def test_name_check_catches_an_unknown_metric(self):
        with self.assertRaises(AssertionError):
            self.check_names("test", "sum(rate(wfm_generated_clouds_total[1m]))", set())
        with self.assertRaises(AssertionError):
            self.check_names("test", "sum by (shard) (wfm_models_loaded)", set())

    def wait_for(self, what, fn, seconds=60):
        deadline = time.time() + seconds
        while True:
            value = fn()
            if value:
                return value
            if time.time() > deadline:
                self.fail(f"{what} not reached in {seconds} s\n{self.prometheus.log()}")
            time.sleep(0.5)

    def test_prometheus_sees_a_positive_generation_throughput(self):
        _, targets = dashboard_targets()
        throughput = [promql_names.substitute_grafana_variables(e) for t, e in targets
                      if "samples/s" in t][0]
        points = [promql_names.substitute_grafana_variables(e) for t, e in targets
                  if "points/s" in t][0]
        # The counter exists: wait for two scrapes of it, then sample again so
        # the rate window holds an increase.
        self.wait_for("a scrape of the sample counter",
                      lambda: self.prometheus.query("count_over_time(wfm_generated_samples_total[1m]) >= 2"))
        self.sample()

        def positive(expr):
            return [(labels, v) for labels, v in self.prometheus.query(expr) if v > 0]
        rates = self.wait_for("a positive throughput", lambda: positive(throughput))
        self.assertEqual([labels for labels, _ in rates], [{"model": "tiny", "family": "pointcloud"}])
        self.wait_for("a positive points/s", lambda: positive(points))

    def test_every_dashboard_query_runs(self):
        _, targets = dashboard_targets()
        self.wait_for("a scrape", lambda: self.prometheus.query('up{job="wfm-server"} == 1'))
        for title, expr in targets:
            with self.subTest(title):
                self.prometheus.query(promql_names.substitute_grafana_variables(expr))

    def test_rules_load_and_evaluate_healthy(self):
        def evaluated():
            groups = self.prometheus.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            if not rules or any(r.get("lastEvaluation", "").startswith("0001") for r in rules):
                return None
            return rules
        rules = self.wait_for("rule evaluations", evaluated)
        self.assertEqual({r["name"] for r in rules}, {n for n, _ in rule_expressions()})
        for r in rules:
            self.assertEqual(r["health"], "ok", r)
        firing = {a["labels"]["alertname"] for a in self.prometheus.api("alerts")["alerts"]}
        self.assertNotIn("WfmServerDown", firing)


if __name__ == "__main__":
    unittest.main(verbosity=2)
