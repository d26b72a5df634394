"""Which manifest fields pyrun supports, ignores with a warning, or refuses.

Every object kind maps to three sets:
  supported  – pyrun implements the field;
  ignored    – a real Kubernetes field pyrun does not implement; ignoring it is harmless → warning;
  refused    – a real Kubernetes field whose absence would weaken isolation or change what runs → error.
Anything else is unknown (a typo) → error, with a "did you mean" suggestion.
"""
from __future__ import annotations

from pyrun.frozen import Frozen

# Pod-level fields a cluster would set or that only matter there: warn, ignore.
_POD_IGNORED = frozenset({
    "activeDeadlineSeconds", "nodeSelector", "serviceAccountName", "serviceAccount",
    "automountServiceAccountToken", "nodeName", "imagePullSecrets", "subdomain", "affinity",
    "schedulerName", "tolerations", "priorityClassName", "priority", "readinessGates",
    "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints",
    "setHostnameAsFQDN", "os", "schedulingGates", "resourceClaims", "hostnameOverride",
})

_VOLUME_TYPES_REFUSED = frozenset({
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "configMap", "csi",
    "downwardAPI", "ephemeral", "fc", "flexVolume", "flocker", "gcePersistentDisk", "gitRepo",
    "glusterfs", "image", "iscsi", "nfs", "persistentVolumeClaim", "photonPersistentDisk",
    "portworxVolume", "projected", "quobyte", "rbd", "scaleIO", "secret", "storageos",
    "vsphereVolume",
})


class Fields(Frozen):
    supported: frozenset[str]
    ignored: frozenset[str] = frozenset()
    refused: frozenset[str] = frozenset()

    def known(self) -> frozenset[str]:
        return self.supported | self.ignored | self.refused


def _f(supported: str, ignored: str = "", refused: str = "") -> Fields:
    return Fields(frozenset(supported.split()), frozenset(ignored.split()), frozenset(refused.split()))


FIELDS: dict[str, Fields] = {
    "Pod": _f("apiVersion kind metadata spec", ignored="status"),
    "ObjectMeta": _f(
        "name namespace uid labels annotations",
        ignored="generateName resourceVersion generation creationTimestamp deletionTimestamp "
                "deletionGracePeriodSeconds ownerReferences finalizers managedFields selfLink",
    ),
    "PodSpec": Fields(
        frozenset({"hostname", "shareProcessNamespace", "terminationGracePeriodSeconds", "restartPolicy",
                   "hostNetwork", "hostPID", "hostIPC", "dnsPolicy", "dnsConfig", "hostAliases", "containers",
                   "volumes", "securityContext", "hostUsers"}),
        _POD_IGNORED,
        frozenset({"initContainers", "ephemeralContainers", "runtimeClassName",
                   "resources"}),
    ),
    "Container": _f(
        "name image imagePullPolicy command args env workingDir ports resources volumeMounts "
        "securityContext tty stdin stdinOnce livenessProbe readinessProbe startupProbe lifecycle",
        ignored="terminationMessagePath "
                "terminationMessagePolicy resizePolicy restartPolicy restartPolicyRules",
        refused="envFrom volumeDevices",
    ),
    "EnvVar": _f("name value valueFrom"),
    "EnvVarSource": _f("fieldRef", refused="secretKeyRef configMapKeyRef resourceFieldRef fileKeyRef"),
    "ObjectFieldSelector": _f("fieldPath apiVersion"),
    "ContainerPort": _f("name containerPort hostPort hostIP protocol"),
    "ResourceRequirements": _f("requests limits", ignored="claims"),
    "VolumeMount": _f("name mountPath readOnly subPath mountPropagation", ignored="recursiveReadOnly",
                      refused="subPathExpr"),
    "Volume": Fields(frozenset({"name", "emptyDir", "hostPath"}), frozenset(), _VOLUME_TYPES_REFUSED),
    "EmptyDirVolumeSource": _f("medium sizeLimit"),
    "HostPathVolumeSource": _f("path type"),
    "PodDNSConfig": _f("nameservers searches options"),
    "PodDNSConfigOption": _f("name value"),
    "HostAlias": _f("ip hostnames"),
    "Probe": _f("exec httpGet tcpSocket grpc initialDelaySeconds periodSeconds timeoutSeconds successThreshold "
                "failureThreshold", ignored="terminationGracePeriodSeconds"),
    "ExecAction": _f("command"),
    "HTTPGetAction": _f("path port host scheme httpHeaders"),
    "HTTPHeader": _f("name value"),
    "TCPSocketAction": _f("port host"),
    "GRPCAction": _f("port service"),
    "Lifecycle": _f("postStart preStop", ignored="stopSignal"),
    "LifecycleHandler": _f("exec httpGet", refused="tcpSocket sleep"),
}


def suggest(name: str, candidates: frozenset[str]) -> str:
    """' (did you mean "containers"?)' when `name` is close to a known field, else ''."""
    import difflib  # only on the error path: keeps `import pyrun.spec` fast

    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        hit = lowered.get(name.lower())
        close = [hit] if hit else []
    return f' (did you mean "{close[0]}"?)' if close else ""
