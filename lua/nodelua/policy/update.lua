--- Which releases this node takes, and when. Override this file in
-- NODELUA_POLICY_DIR (or extend it: require("nodelua.policy.update") inside
-- the override returns this one); SIGHUP applies the change to the next
-- check. docs/policy.md has the details, examples/policy/update.lua a
-- maintenance window.
--
-- A release, as these functions see it:
--   { tag = "stable-1.4.0", channel = "stable", version = "1.4.0" }
-- ctx: { channel = UPDATE_CHANNEL, node_id = "...", running = "1.3.2",
--        now = Unix seconds, policy = the update policy in force }
-- The functions here read their settings (channels, rollout_percent) from
-- ctx.policy, so an override that only sets a field is obeyed.

local M = {}

-- The channels a node on each channel accepts: stable sees stable; beta
-- sees beta and stable; nightly sees all.
M.channels = {
  stable = { stable = true },
  beta = { beta = true, stable = true },
  nightly = { nightly = true, beta = true, stable = true },
}

-- The share of nodes (0 to 100) that take a new release at once: each node
-- is in or out by a hash of its id and the version, so that a fleet updates
-- in stages and the same nodes go first for a given release.
M.rollout_percent = 100

--- Whether this node accepts the release at all: its channel, pins and
-- skips. Returns true, or false and why (shown by `nodelua update check`).
function M.accept(release, ctx)
  local channels = (ctx.policy or M).channels or M.channels
  local accepted = channels[ctx.channel] or channels.stable
  if not accepted[release.channel] then
    return false, ("channel %s is not followed by a %s node"):format(release.channel, ctx.channel)
  end
  return true
end

--- A number from 0 to 99 for this node and this version.
function M.rollout_slot(node_id, version)
  local h = 2166136261
  for i = 1, #(node_id .. version) do
    h = ((h ~ (node_id .. version):byte(i)) * 16777619) & 0xffffffff
  end
  return h % 100
end

--- Whether this node may install the release now: the staged rollout here;
-- a window in examples/policy/update.lua. Returns true, or false and why.
function M.may_install(release, ctx)
  local percent = (ctx.policy or M).rollout_percent or M.rollout_percent
  local slot = M.rollout_slot(ctx.node_id or "", release.version)
  if slot >= percent then
    return false, ("outside the staged rollout (%d%% of nodes; this one is at %d)"):format(percent, slot)
  end
  return true
end

return M
