#!/usr/bin/env bash
# What the build says of RDMA is what it holds: `nodelua version` says
# rdma=on or rdma=off; with it on, the verbs code is in the binary but
# rdma-core is not a link-time dependency (it is loaded only where a host
# has a device); with it off, none of the RDMA code is linked (the frames
# are still parsed, so that a proposal is refused with the reason).
source "$(dirname "$0")/lib.sh"
cd "$WORK"
build=$(clean_env "$NODELUA" version | sed -n 2p)
symbols=$(nm "$NODELUA" 2>/dev/null)
libraries=$(ldd "$NODELUA" 2>/dev/null || otool -L "$NODELUA")
check "rdma-core is never linked at build time" lacks "$libraries" "libibverbs"
check "nor librdmacm" lacks "$libraries" "librdmacm"
case "$build" in
*rdma=on*)
  check "the RDMA code is in" contains "$symbols" " nl_verbs_load"
  check "the sender's queue pair is in" contains "$symbols" " nl_rdma_connect"
  ;;
*rdma=off*)
  check "no verbs code" lacks "$symbols" "nl_verbs_load"
  check "no queue pair code" lacks "$symbols" "nl_rdma_connect"
  check "no receiver's pool" lacks "$symbols" "nl_rdma_listen"
  check "no credits" lacks "$symbols" "nl_rdma_credit"
  ;;
*)
  fail "nodelua version says nothing of rdma: $build"
  ;;
esac
finish
