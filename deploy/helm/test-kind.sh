#!/usr/bin/env bash
# End to end on a real cluster: the chart in both modes on kind (Kubernetes in Docker).
# For machines with internet access (kind pulls its node image, the test pods pull curl);
# the project's CI has none, so tests/test_chart_kind.py skips this unless IMDSMOCK_KIND=1.
#   bash deploy/helm/test-kind.sh            # needs docker, kind, kubectl, helm
#   KEEP=1 bash deploy/helm/test-kind.sh     # leave the cluster up to look around
# Steps: a kind cluster; the project's image built and loaded into it; mode service (helm
# test, a pod reaching it through AWS_EC2_METADATA_SERVICE_ENDPOINT, the control API with
# the Secret's token); mode node (helm test, two pods each seeing the instance their
# annotation names at 169.254.169.254, hop limit 2); uninstall, and no rule of ours left on
# the node.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=${CLUSTER:-imdsmock-e2e}
TAG=${TAG:-e2e}
CURL_IMAGE=${CURL_IMAGE:-curlimages/curl:8.11.1}
CHART=deploy/helm/imdsmock
say() { echo "test-kind: $*"; }
fail() { echo "test-kind: FAILED: $*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    say "cluster $CLUSTER kept (kind delete cluster --name $CLUSTER)"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

say "cluster $CLUSTER"
kind create cluster --name "$CLUSTER" --wait 120s
say "image imdsmock:$TAG"
docker build -q -t "imdsmock:$TAG" .
kind load docker-image "imdsmock:$TAG" --name "$CLUSTER"
common=(--set "image.tag=$TAG" --set image.pullPolicy=Never --wait --timeout 180s)

# curl_pod NAMESPACE NAME [ANNOTATION] -- ARGS: run curl in a pod of the pod network, print
# its output.
curl_pod() {
  local ns=$1 name=$2 annotation=$3
  shift 4
  kubectl -n "$ns" run "$name" --image "$CURL_IMAGE" --restart Never \
    ${annotation:+--annotations "$annotation"} --command -- sh -c "$*" >/dev/null
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$name" --timeout 120s \
    >/dev/null || { kubectl -n "$ns" logs "$name" >&2 || true; fail "pod $name did not succeed"; }
  kubectl -n "$ns" logs "$name"
}

# --- mode service -------------------------------------------------------------------------
say "mode service"
helm install svc "$CHART" -n imds-svc --create-namespace "${common[@]}" \
  --set-json 'config={"instance":{"instance-id":"i-0feedfacefeedface"}}'
helm test svc -n imds-svc
got=$(curl_pod imds-svc sdk "" -- \
  'T=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://svc-imdsmock.imds-svc/latest/api/token) &&
   curl -sf -H "X-aws-ec2-metadata-token: $T" http://svc-imdsmock.imds-svc/latest/meta-data/instance-id')
[ "$got" = i-0feedfacefeedface ] || fail "service mode served '$got'"
token=$(kubectl -n imds-svc get secret svc-imdsmock-control -o jsonpath='{.data.token}' | base64 -d)
code=$(curl_pod imds-svc ctl "" -- \
  "curl -s -o /dev/null -w '%{http_code}' http://svc-imdsmock.imds-svc:1339/v1/state")
[ "$code" = 401 ] || fail "the control API answered $code without the token"
code=$(curl_pod imds-svc ctl2 "" -- \
  "curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $token' http://svc-imdsmock.imds-svc:1339/v1/state")
[ "$code" = 200 ] || fail "the control API answered $code with the token"
helm uninstall svc -n imds-svc --wait

# --- mode node ----------------------------------------------------------------------------
say "mode node"
helm install node "$CHART" -n imds-node --create-namespace --set mode=node "${common[@]}" \
  --set-json 'config={"instances":[
    {"name":"web","instance":{"instance-id":"i-0aaaaaaaaaaaaaaa1","iam-role":"web-role"}},
    {"name":"worker","instance":{"instance-id":"i-0bbbbbbbbbbbbbbb2","iam-role":"worker-role"}}]}'
helm test node -n imds-node
for who in web:i-0aaaaaaaaaaaaaaa1 worker:i-0bbbbbbbbbbbbbbb2; do
  name=${who%%:*} want=${who#*:}
  got=$(curl_pod default "pod-$name" "imdsmock.io/instance=$name" -- \
    'T=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" http://169.254.169.254/latest/api/token) &&
     curl -sf -H "X-aws-ec2-metadata-token: $T" http://169.254.169.254/latest/meta-data/instance-id')
  [ "$got" = "$want" ] || fail "pod-$name saw '$got', not $want"
  say "pod-$name is $got"
done
helm uninstall node -n imds-node --wait
sleep 5
for node in $(kind get nodes --name "$CLUSTER"); do
  left=$(docker exec "$node" sh -c 'iptables-save 2>/dev/null; nft list ruleset 2>/dev/null' |
    grep -ci imdsmock || true)
  [ "$left" = 0 ] || fail "$left rules of ours left on $node after uninstall"
done
say "passed"
