#!/usr/bin/env bash
# Runs a local Shoal cluster: 3 managers and 2 workers, each a "host" in its
# own network namespace on a private LAN (198.18.0.0/16) that lives in a
# namespace of its own, with a demo service of 6 replicas on an overlay
# network, published on port 8080 of every node (the routing mesh), and a
# global one, running as Docker containers. Overlay addresses come from
# 198.19.0.0/16 and nothing is routed out of the demo's namespaces. Needs
# root, iproute2, util-linux (nsenter), a running Docker Engine and
# Debian's busybox-static (for the demo image).
#
#   scripts/demo.sh          build, start the cluster and show it
#   scripts/demo.sh down     stop every daemon and remove the namespaces
#
# While it runs, talk to any node with
#   /tmp/shoal-demo/shoal -H unix:///tmp/shoal-demo/node1.sock node ls
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=/tmp/shoal-demo
NS=shdemo
MANAGERS=3
WORKERS=2
TOTAL=$((MANAGERS + WORKERS))
shoal() { "$DIR/shoal" -H "unix://$DIR/node$1.sock" "${@:2}"; }

IMAGE=shoal-demo/busybox:1

# demo_image imports a static busybox as the demo's container image (no
# registry is needed: images must already be on the node's engine).
demo_image() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 && return
  local root
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp"
  cp /bin/busybox "$root/bin/"
  for a in sh sleep echo hostname cat ls true httpd wget nslookup; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
  rm -rf "$root"
}

down() {
  for pidfile in "$DIR"/node*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
  # Then the containers of the demo's tasks, only those labelled with the
  # demo nodes' IDs: tasks keep running when a daemon stops, as with
  # docker, and the daemons must be gone first or they would replace them.
  for state in "$DIR"/node*/swarm/state.json; do
    [ -f "$state" ] || continue
    id=$(sed -n 's/.*"node_id": *"\([^"]*\)".*/\1/p' "$state" | head -n 1)
    [ -n "$id" ] || continue
    ids=$(docker ps -aq --filter "label=shoal.node.id=$id" 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^${NS}-" || true); do
    ip netns del "$ns"
  done
  # Overlay sandboxes are namespaces bind-mounted in the data directories.
  awk -v d="$DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$DIR"
  docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
  # The tasks' sandbox image, unless other containers still use it.
  docker rmi shoal/sandbox:1 >/dev/null 2>&1 || true
}

up() {
  down
  mkdir -p "$DIR"
  # Tasks' resolvers forward names outside the swarm here: the loopback
  # of each host's namespace, where nothing answers.
  echo "nameserver 127.0.0.1" >"$DIR/resolv.conf"
  echo "building shoal..."
  go build -o "$DIR/shoal" ./cmd/shoal

  ip netns add "$NS-lan"
  ip -n "$NS-lan" link add br0 type bridge
  ip -n "$NS-lan" link set br0 up
  for i in $(seq "$TOTAL"); do
    ip netns add "$NS-h$i"
    ip link add "${NS}h$i" type veth peer name "${NS}b$i"
    ip link set "${NS}h$i" netns "$NS-h$i"
    ip link set "${NS}b$i" netns "$NS-lan"
    ip -n "$NS-h$i" link set "${NS}h$i" name eth0
    ip -n "$NS-h$i" addr add "198.18.0.$i/16" dev eth0
    ip -n "$NS-h$i" link set eth0 up
    ip -n "$NS-h$i" link set lo up
    ip -n "$NS-lan" link set "${NS}b$i" master br0
    ip -n "$NS-lan" link set "${NS}b$i" up
    nsenter --net="/run/netns/$NS-h$i" "$DIR/shoal" daemon --data-dir "$DIR/node$i" \
      --host "unix://$DIR/node$i.sock" --node-name "node$i" --advertise-addr "198.18.0.$i" \
      --egress-subnet 198.19.255.0/24 --resolv-conf "$DIR/resolv.conf" \
      >"$DIR/node$i.log" 2>&1 &
    echo $! >"$DIR/node$i.pid"
  done
  for i in $(seq "$TOTAL"); do
    for _ in $(seq 100); do [ -S "$DIR/node$i.sock" ] && break; sleep 0.1; done
    [ -S "$DIR/node$i.sock" ] || { echo "node$i did not start; see $DIR/node$i.log" >&2; exit 1; }
  done

  shoal 1 swarm init --advertise-addr 198.18.0.1 --default-addr-pool 198.19.0.0/16
  mtok=$(shoal 1 swarm join-token -q manager)
  wtok=$(shoal 1 swarm join-token -q worker)
  for i in $(seq 2 "$MANAGERS"); do shoal "$i" swarm join --token "$mtok" 198.18.0.1:2377; done
  for i in $(seq $((MANAGERS + 1)) "$TOTAL"); do shoal "$i" swarm join --token "$wtok" 198.18.0.1:2377; done
  shoal 1 node update --label-add zone=a node4 >/dev/null
  shoal 1 node update --label-add zone=b node5 >/dev/null
  for _ in $(seq 50); do
    [ "$(shoal 1 node ls --format '{{.Status}}' | grep -c Ready)" = "$TOTAL" ] && break
    sleep 0.2
  done
  echo
  shoal 1 node ls
  echo
  if [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q static; then
    demo_image
    shoal 1 network create -d overlay demo-net >/dev/null
    shoal 1 service create --name demo --replicas 6 --stop-grace-period 1s \
      --network demo-net --publish 8080:80 "$IMAGE" \
      sh -c 'hostname > /tmp/index.html; httpd -p 80 -h /tmp; while true; do echo "tick from $(hostname)"; sleep 5; done'
    shoal 1 service create -d --name per-node --mode global "$IMAGE" sleep 86400 >/dev/null
    echo
    shoal 1 service ls
    echo
    shoal 1 service ps demo
  else
    echo "(install Debian's busybox-static to get a demo service)"
  fi
  echo
  echo "The cluster is running. Try:"
  echo "  $DIR/shoal -H unix://$DIR/node2.sock node ls"
  echo "  $DIR/shoal -H unix://$DIR/node1.sock info"
  echo "  kill -9 \$(cat $DIR/node1.pid); $DIR/shoal -H unix://$DIR/node2.sock node ls"
  echo "  nsenter --net=/run/netns/$NS-h1 busybox wget -qO- http://198.18.0.4:8080/   # the routing mesh, any node"
  echo "Logs: $DIR/node*.log. Stop it with: scripts/demo.sh down"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
