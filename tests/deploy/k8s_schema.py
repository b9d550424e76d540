"""Offline schema checks of rendered Kubernetes objects: the fields and types
of the API versions deploy/k8s uses (core/v1, apps/v1, batch/v1, policy/v1,
autoscaling/v2, networking.k8s.io/v1 and the Prometheus Operator's
monitoring.coreos.com/v1), transcribed from the Kubernetes API reference for
the parts of those types the manifests touch. An unknown field (a typo,
which an API server drops or rejects) or a wrong type is an error; so is a
kind this file does not know, so new kinds get a schema before they ship.

    errors = k8s_schema.validate(obj)   # [] when valid
"""

STR, INT, BOOL, INT_OR_STR, QUANTITY, MAP, ANY = (
    "string", "integer", "boolean", "int-or-string", "quantity", "map[string]string", "any")

LABEL_SELECTOR = {
    "matchLabels": MAP,
    "matchExpressions": [{"key": STR, "operator": STR, "values": [STR]}],
}
OBJECT_META = {
    "name": STR, "namespace": STR, "labels": MAP, "annotations": MAP, "generateName": STR,
}
RESOURCES = {"requests": {"*": QUANTITY}, "limits": {"*": QUANTITY}}
KEY_TO_PATH = {"key": STR, "path": STR, "mode": INT}
OBJECT_FIELD_SELECTOR = {"fieldPath": STR, "apiVersion": STR}
RESOURCE_FIELD_SELECTOR = {"containerName": STR, "resource": STR, "divisor": QUANTITY}
ENV_VAR = {
    "name": STR,
    "value": STR,
    "valueFrom": {
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "configMapKeyRef": {"name": STR, "key": STR, "optional": BOOL},
        "secretKeyRef": {"name": STR, "key": STR, "optional": BOOL},
    },
}
ENV_FROM = {
    "prefix": STR,
    "configMapRef": {"name": STR, "optional": BOOL},
    "secretRef": {"name": STR, "optional": BOOL},
}
PROBE = {
    "exec": {"command": [STR]},
    "httpGet": {"path": STR, "port": INT_OR_STR, "host": STR, "scheme": STR,
                "httpHeaders": [{"name": STR, "value": STR}]},
    "tcpSocket": {"port": INT_OR_STR, "host": STR},
    "grpc": {"port": INT, "service": STR},
    "initialDelaySeconds": INT, "timeoutSeconds": INT, "periodSeconds": INT,
    "successThreshold": INT, "failureThreshold": INT, "terminationGracePeriodSeconds": INT,
}
SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": BOOL, "readOnlyRootFilesystem": BOOL, "runAsNonRoot": BOOL,
    "runAsUser": INT, "runAsGroup": INT, "privileged": BOOL,
    "capabilities": {"add": [STR], "drop": [STR]},
    "seccompProfile": {"type": STR, "localhostProfile": STR},
}
CONTAINER = {
    "name": STR, "image": STR, "imagePullPolicy": STR, "command": [STR], "args": [STR],
    "workingDir": STR, "env": [ENV_VAR], "envFrom": [ENV_FROM],
    "ports": [{"name": STR, "containerPort": INT, "protocol": STR, "hostPort": INT}],
    "resources": RESOURCES,
    "startupProbe": PROBE, "readinessProbe": PROBE, "livenessProbe": PROBE,
    "securityContext": SECURITY_CONTEXT,
    "volumeMounts": [{"name": STR, "mountPath": STR, "readOnly": BOOL, "subPath": STR}],
    "lifecycle": {"preStop": {"exec": {"command": [STR]}, "sleep": {"seconds": INT}}},
    "terminationMessagePolicy": STR,
}
VOLUME = {
    "name": STR,
    "persistentVolumeClaim": {"claimName": STR, "readOnly": BOOL},
    "emptyDir": {"medium": STR, "sizeLimit": QUANTITY},
    "secret": {"secretName": STR, "defaultMode": INT, "optional": BOOL, "items": [KEY_TO_PATH]},
    "configMap": {"name": STR, "defaultMode": INT, "optional": BOOL, "items": [KEY_TO_PATH]},
}
POD_SPEC = {
    "containers": [CONTAINER], "initContainers": [CONTAINER], "volumes": [VOLUME],
    "serviceAccountName": STR, "automountServiceAccountToken": BOOL,
    "terminationGracePeriodSeconds": INT, "restartPolicy": STR, "subdomain": STR,
    "hostname": STR, "nodeSelector": MAP, "priorityClassName": STR,
    "imagePullSecrets": [{"name": STR}],
    "securityContext": {
        "runAsNonRoot": BOOL, "runAsUser": INT, "runAsGroup": INT, "fsGroup": INT,
        "fsGroupChangePolicy": STR, "supplementalGroups": [INT],
        "seccompProfile": {"type": STR, "localhostProfile": STR},
    },
    "affinity": ANY, "tolerations": [ANY], "topologySpreadConstraints": [ANY],
}
POD_TEMPLATE = {"metadata": OBJECT_META, "spec": POD_SPEC}
PVC_SPEC = {
    "accessModes": [STR], "storageClassName": STR, "volumeMode": STR,
    "resources": {"requests": {"storage": QUANTITY}, "limits": {"storage": QUANTITY}},
    "selector": LABEL_SELECTOR,
}
SERVICE_PORT = {"name": STR, "port": INT, "targetPort": INT_OR_STR, "protocol": STR,
                "appProtocol": STR, "nodePort": INT}
NETWORK_POLICY_PEER = {"podSelector": LABEL_SELECTOR, "namespaceSelector": LABEL_SELECTOR,
                       "ipBlock": {"cidr": STR, "except": [STR]}}
NETWORK_POLICY_PORT = {"port": INT_OR_STR, "endPort": INT, "protocol": STR}
METRIC_TARGET = {"type": STR, "averageUtilization": INT, "averageValue": QUANTITY,
                 "value": QUANTITY}
HPA_SCALING_RULES = {
    "stabilizationWindowSeconds": INT, "selectPolicy": STR,
    "policies": [{"type": STR, "value": INT, "periodSeconds": INT}],
}
RULE = {"alert": STR, "record": STR, "expr": STR, "for": STR, "keep_firing_for": STR,
        "labels": MAP, "annotations": MAP}

KINDS = {
    ("v1", "Namespace"): {},
    ("v1", "ServiceAccount"): {"automountServiceAccountToken": BOOL,
                               "imagePullSecrets": [{"name": STR}]},
    ("v1", "ConfigMap"): {"data": MAP, "binaryData": MAP, "immutable": BOOL},
    ("v1", "Secret"): {"data": MAP, "stringData": MAP, "type": STR, "immutable": BOOL},
    ("v1", "PersistentVolumeClaim"): {"spec": PVC_SPEC},
    ("v1", "Service"): {"spec": {
        "type": STR, "clusterIP": STR, "selector": MAP, "ports": [SERVICE_PORT],
        "publishNotReadyAddresses": BOOL, "sessionAffinity": STR,
        "internalTrafficPolicy": STR}},
    ("apps/v1", "StatefulSet"): {"spec": {
        "serviceName": STR, "replicas": INT, "podManagementPolicy": STR,
        "selector": LABEL_SELECTOR, "template": POD_TEMPLATE,
        "volumeClaimTemplates": [{"metadata": OBJECT_META, "spec": PVC_SPEC}],
        "updateStrategy": {"type": STR, "rollingUpdate": {"partition": INT,
                                                          "maxUnavailable": INT_OR_STR}},
        "minReadySeconds": INT, "revisionHistoryLimit": INT,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": STR, "whenScaled": STR}}},
    ("batch/v1", "Job"): {"spec": {
        "completionMode": STR, "completions": INT, "parallelism": INT, "backoffLimit": INT,
        "ttlSecondsAfterFinished": INT, "activeDeadlineSeconds": INT,
        "backoffLimitPerIndex": INT, "template": POD_TEMPLATE}},
    ("policy/v1", "PodDisruptionBudget"): {"spec": {
        "maxUnavailable": INT_OR_STR, "minAvailable": INT_OR_STR, "selector": LABEL_SELECTOR,
        "unhealthyPodEvictionPolicy": STR}},
    ("autoscaling/v2", "HorizontalPodAutoscaler"): {"spec": {
        "scaleTargetRef": {"apiVersion": STR, "kind": STR, "name": STR},
        "minReplicas": INT, "maxReplicas": INT,
        "metrics": [{"type": STR,
                     "resource": {"name": STR, "target": METRIC_TARGET},
                     "pods": {"metric": {"name": STR, "selector": LABEL_SELECTOR},
                              "target": METRIC_TARGET}}],
        "behavior": {"scaleUp": HPA_SCALING_RULES, "scaleDown": HPA_SCALING_RULES}}},
    ("networking.k8s.io/v1", "NetworkPolicy"): {"spec": {
        "podSelector": LABEL_SELECTOR, "policyTypes": [STR],
        "ingress": [{"from": [NETWORK_POLICY_PEER], "ports": [NETWORK_POLICY_PORT]}],
        "egress": [{"to": [NETWORK_POLICY_PEER], "ports": [NETWORK_POLICY_PORT]}]}},
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {"spec": {
        "selector": LABEL_SELECTOR, "jobLabel": STR,
        "namespaceSelector": {"any": BOOL, "matchNames": [STR]},
        "endpoints": [{"port": STR, "targetPort": INT_OR_STR, "path": STR, "scheme": STR,
                       "interval": STR, "scrapeTimeout": STR, "honorLabels": BOOL}]}},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {"spec": {
        "groups": [{"name": STR, "interval": STR, "rules": [RULE]}]}},
}


def _check(value, schema, path, errors):
    if schema == ANY:
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            sub = schema.get(key, schema.get("*"))
            if sub is None:
                errors.append(f"{path}.{key}: unknown field")
            else:
                _check(item, sub, f"{path}.{key}", errors)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, schema[0], f"{path}[{i}]", errors)
        return
    ok = {
        STR: isinstance(value, str),
        INT: isinstance(value, int) and not isinstance(value, bool),
        BOOL: isinstance(value, bool),
        INT_OR_STR: isinstance(value, (int, str)) and not isinstance(value, bool),
        QUANTITY: isinstance(value, (int, str)) and not isinstance(value, bool),
        MAP: isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in value.items()),
    }[schema]
    if not ok:
        errors.append(f"{path}: expected {schema}, got {value!r}")


def validate(obj):
    """Errors of one object (empty when it matches its kind's schema)."""
    kind = (obj.get("apiVersion"), obj.get("kind"))
    name = (obj.get("metadata") or {}).get("name", "?")
    where = f"{kind[1]}/{name}"
    if kind not in KINDS:
        return [f"{where}: no schema for apiVersion {kind[0]} kind {kind[1]}"]
    errors = []
    schema = dict(KINDS[kind], apiVersion=STR, kind=STR, metadata=OBJECT_META)
    _check(obj, schema, where, errors)
    if not (obj.get("metadata") or {}).get("name"):
        errors.append(f"{where}: metadata.name missing")
    return errors
