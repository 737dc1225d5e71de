-- Argo CD health check for adacot's four kinds (GradingRun, DifficultyBank, DistillationJob, SFTJob).
-- Reads only status.observedGeneration, status.phase, status.conditions and status.progress, which every
-- kind shares (adacot/api/status.py). Stalled and Ready are the kstatus conditions kubectl wait and
-- Flux read too, so all three judge alike; Failed and Complete still count (statuses written before
-- those existed). Lua 5.1 (Argo CD's gopher-lua); tested by tests/unit/test_argocd_health.py. Order
-- matters: a stale status says nothing about the current spec, a failure outranks everything else, a
-- suspended resource is neither healthy nor progressing.
local hs = { status = "Progressing", message = "Waiting for the adacot operator to report status" }

local function condition(ctype)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function is_true(ctype)
  local c = condition(ctype)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil then
  return hs
end

local phase = obj.status.phase
local generation = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if is_true("Stalled") or is_true("Failed") or phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(condition("Stalled") or condition("Failed"), "Failed")
  return hs
end

if is_true("Suspended") or phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(condition("Suspended"), "Suspended")
  return hs
end

if is_true("Complete") or is_true("Ready") or phase == "Succeeded" or phase == "Ready" then
  hs.status = "Healthy"
  hs.message = describe(condition("Ready") or condition("Complete"), phase or "Complete")
  return hs
end

local inputs = condition("InputsReady")
if (inputs ~= nil and inputs.status == "False") or phase == "WaitingForInputs" then
  hs.message = describe(inputs, "WaitingForInput")
  return hs
end

local admitted = condition("Admitted")
if (admitted ~= nil and admitted.status == "False") or phase == "Queued" then
  hs.message = describe(admitted, "Queued")
  return hs
end

if is_true("Running") or phase == "Running" then
  hs.message = "Running"
  local p = obj.status.progress
  if p ~= nil and p.percent ~= nil then
    hs.message = string.format("Running: %.0f%%", p.percent)
    if p.done ~= nil and p.total ~= nil then
      hs.message = hs.message .. string.format(" (%d/%d)", p.done, p.total)
    end
  end
  return hs
end

hs.message = phase or "Pending"
return hs
