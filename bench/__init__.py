"""Benchmarks of Damselfly: `damselfly bench` (a pull storm in network namespaces, and one host on loopback)
and `damselfly simulate` (the supernode's scheduler at scale, without sockets).

Modules, one concept each:
- `cli`: the two commands' flags (light: `damselfly` imports it at every start); `command`: the order of their parts.
- `netns`: hosts in network namespaces on a bridge, links shaped with `tc tbf`.
- `procs`: child processes with logs and timeouts, always stopped.
- `registry`: the real `docker-registry` as upstream and as central cache; bytes served from its log.
- `image`, `blob`: random test content, built once and cached in registry storage.
- `pull`: skopeo on every host at once, timed and verified.
- `cluster`: the three pull-storm scenarios; `loopback`: the one-host figures.
- `file_storm`: N hosts fetch one large file from nginx behind the shaped link, direct and through `damselfly get`
  (`bench --scenarios files`); `file_report`: its Markdown.
- `simulate`, `sim_model`, `sim_memory`: the scheduler simulation.
- `sn_bench`: one real supernode process under HTTP load (`bench --scenarios supernode`), driven by `sn_load`
  (simulated peers in one process) over `http1` (a lean keep-alive HTTP/1.1 client).
- `results`, `report`, `sim_report`, `sn_report`, `machine`: figures, Markdown, and the machine they were measured on.
"""
