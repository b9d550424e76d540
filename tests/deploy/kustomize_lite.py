"""An offline renderer of the kustomize subset deploy/k8s uses, for machines
without kubectl (tests/deploy compares it with `kubectl kustomize` wherever
kubectl exists, so the two stay equivalent).

Supported kustomization fields: resources (files and directories),
namespace, labels (pairs; includeSelectors false), images,
secretGenerator / configMapGenerator (literals, files; a content-hash name
suffix like kustomize's, though not byte-identical to it), patches
(strategic-merge patch files, matched by kind and name). Anything else
raises UnsupportedError instead of being ignored.
"""
import base64
import copy
import hashlib
import json
import os

import yaml

KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images",
                "secretGenerator", "configMapGenerator", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
# Strategic-merge keys of the lists our patches may touch.
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
              "env": "name", "volumeMounts": "mountPath", "ports": "containerPort",
              "volumeClaimTemplates": None, "imagePullSecrets": "name"}


class UnsupportedError(ValueError):
    pass


def _load_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _pod_specs(obj):
    """The pod specs inside a workload (Pod, Deployment, StatefulSet, Job...)."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Pod":
        return [spec]
    found = []
    template = spec.get("template")
    if isinstance(template, dict) and "spec" in template:
        found.append(template["spec"])
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        found.extend(_pod_specs({"kind": "Job", "spec": job_template.get("spec") or {}}))
    return found


def _hash_suffix(obj):
    body = {"kind": obj["kind"], "name": obj["metadata"]["name"], "data": obj.get("data", {})}
    if obj["kind"] == "Secret":
        body["type"] = obj.get("type", "Opaque")
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    return digest[:10].translate(str.maketrans({"0": "g", "1": "h", "3": "k", "a": "m",
                                                "e": "t"}))


def _generate(kind, spec, base_dir):
    data = {}
    for literal in spec.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep:
            raise UnsupportedError(f"literal {literal!r} without '='")
        data[key] = value
    for entry in spec.get("files", []):
        key, sep, path = entry.partition("=")
        if not sep:
            key, path = os.path.basename(entry), entry
        with open(os.path.join(base_dir, path), encoding="utf-8") as f:
            data[key] = f.read()
    for field_name in spec:
        if field_name not in {"name", "literals", "files", "type", "options"}:
            raise UnsupportedError(f"{kind} generator field {field_name!r}")
    options = spec.get("options", {})
    obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        obj["type"] = spec.get("type", "Opaque")
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        obj["data"] = data
    if options.get("labels"):
        obj["metadata"]["labels"] = dict(options["labels"])
    original = spec["name"]
    if not options.get("disableNameSuffixHash", False):
        obj["metadata"]["name"] = f"{original}-{_hash_suffix(obj)}"
    return obj, original


def _merge(base, patch, key=None):
    if isinstance(base, dict) and isinstance(patch, dict):
        if "$patch" in patch:
            raise UnsupportedError("$patch directives")
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(key):
        merge_key = MERGE_KEYS[key]
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            for j, existing in enumerate(out):
                if isinstance(existing, dict) and existing.get(merge_key) == item.get(merge_key):
                    out[j] = _merge(existing, item)
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def _rename_references(obj, kind, renames):
    """Points references to generated ConfigMaps / Secrets at their new names."""
    for pod in _pod_specs(obj):
        for volume in pod.get("volumes", []):
            if kind == "Secret" and "secret" in volume:
                name = volume["secret"].get("secretName")
                volume["secret"]["secretName"] = renames.get(name, name)
            if kind == "ConfigMap" and "configMap" in volume:
                name = volume["configMap"].get("name")
                volume["configMap"]["name"] = renames.get(name, name)
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get(
                    "secretKeyRef" if kind == "Secret" else "configMapKeyRef")
                if ref:
                    ref["name"] = renames.get(ref["name"], ref["name"])
            for env_from in container.get("envFrom", []):
                ref = env_from.get("secretRef" if kind == "Secret" else "configMapRef")
                if ref:
                    ref["name"] = renames.get(ref["name"], ref["name"])
        if kind == "Secret":
            for pull in pod.get("imagePullSecrets", []):
                pull["name"] = renames.get(pull["name"], pull["name"])


def _set_image(image, rules):
    name, tag = image, None
    if "@" in image:
        raise UnsupportedError("images with digests")
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    for rule in rules:
        if rule["name"] == name:
            name = rule.get("newName", name)
            tag = rule.get("newTag", tag)
    return f"{name}:{tag}" if tag else name


def render(directory):
    """The objects `kubectl kustomize directory` would print."""
    path = os.path.join(directory, "kustomization.yaml")
    with open(path, encoding="utf-8") as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN_FIELDS
    if unknown:
        raise UnsupportedError(f"{path}: fields {sorted(unknown)}")

    objects = []
    for resource in k.get("resources", []):
        full = os.path.normpath(os.path.join(directory, resource))
        if os.path.isdir(full):
            objects.extend(render(full))
        else:
            objects.extend(_load_documents(full))

    renames = {"Secret": {}, "ConfigMap": {}}
    for kind, field_name in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for spec in k.get(field_name, []):
            obj, original = _generate(kind, spec, directory)
            renames[kind][original] = obj["metadata"]["name"]
            objects.append(obj)

    for patch_spec in k.get("patches", []):
        if set(patch_spec) != {"path"}:
            raise UnsupportedError(f"patch fields {sorted(patch_spec)}")
        for patch in _load_documents(os.path.join(directory, patch_spec["path"])):
            targets = [o for o in objects if o["kind"] == patch["kind"]
                       and o["metadata"]["name"] == patch["metadata"]["name"]]
            if len(targets) != 1:
                raise UnsupportedError(f"patch {patch_spec['path']} matches {len(targets)} objects")
            merged = _merge(targets[0], patch)
            objects[objects.index(targets[0])] = merged

    namespace = k.get("namespace")
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = namespace
        for entry in k.get("labels", []):
            if entry.get("includeSelectors") or entry.get("includeTemplates"):
                raise UnsupportedError("labels with includeSelectors / includeTemplates")
            meta.setdefault("labels", {}).update(entry["pairs"])
        for pod in _pod_specs(obj):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                if "image" in container and k.get("images"):
                    container["image"] = _set_image(container["image"], k["images"])
        for kind, table in renames.items():
            if table:
                _rename_references(obj, kind, table)
    return objects


def key(obj):
    meta = obj.get("metadata", {})
    return (obj.get("kind"), meta.get("namespace", ""), meta.get("name"))


if __name__ == "__main__":
    import sys
    print(yaml.safe_dump_all(render(sys.argv[1]), sort_keys=False), end="")
