"""CNI: run the network plugins a cluster brings (`--network cni`), as the kubelet's runtime does.

    config   (pure) find the first valid network configuration list in the conf dir
    protocol (pure) per-plugin stdin config (name, cniVersion, runtimeConfig, prevResult),
             the CNI_* environment, results and error replies
    invoke   run one plugin binary: stdin = config JSON, env, timeout (the only subprocess)
    cache    the libcni-style result cache under the state root (<root>/cni/results)
    chain    ADD / DEL / CHECK / STATUS of a whole list, with the cache; what podnet calls

The spec: https://github.com/containernetworking/cni/blob/main/SPEC.md (versions 0.4.0,
1.0.0; STATUS from 1.1.0).
"""
