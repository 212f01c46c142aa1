# Last: after everything above (hostile requests included), no Wasm VM failed. A trap logs
# "panicked at" (Warden's panic hook, filter/src/host/logger.rs, logs the panic message) and
# "Uncaught RuntimeError" (V8's trap message, proxy-wasm/proxy-wasm-cpp-host src/v8/v8.cc), and a
# request on a failed VM is answered 503 with the details `wasm_fail_stream` (Envoy
# source/extensions/common/wasm/context.cc failStream); with FAIL_RELOAD the VM would be
# recreated and counted in wasm.<plugin>.vm_reload*. Warden's own fail-closed answers
# (`warden_internal_error`, `warden_not_configured`) would mean a host call failed or no
# configuration was loaded: none may occur either.

group "Wasm VM health after the suite"

for w in frontend backend intruder; do
  begin "$w: no panic, trap or failed stream in its log during this run"
  # "Wasm VM failed Failed to configure base Wasm plugin" is how Envoy logs a configuration the
  # module refused (on_configure returned false), which 60-live-changes.sh does on purpose.
  found="$(log_since_start "$w" | grep -E 'panicked|Uncaught|RuntimeError|wasm_fail_stream|Wasm VM failed|Failed to create Wasm' |
    grep -v 'Wasm VM failed Failed to configure base Wasm plugin' | head -n 3)"
  [ -z "$found" ] || fail "found: $(short "$found" 500)"
  found="$(log_since_start "$w" | grep -E 'warden_internal_error|warden_not_configured' | head -n 3)"
  [ -z "$found" ] || fail "Warden failed closed for an internal reason: $(short "$found" 500)"
  end

  begin "$w: every Wasm failure and reload counter is 0 (wasm.*fail*, wasm.*reload*)"
  stats="$(curl -s --max-time 5 "$(admin "$w")/stats" | grep -E '^wasm\.' | grep -E 'fail|reload')"
  [ -n "$stats" ] || fail "no wasm.*fail*/reload* stats on $w (expected e.g. wasm.warden.vm_reload_failure)"
  nonzero="$(awk -F': ' '$2 != 0' <<<"$stats")"
  [ -z "$nonzero" ] || fail "non-zero: $(short "$nonzero" 400)"
  active="$(curl -s --max-time 5 "$(admin "$w")/stats?filter=^wasm\.envoy\.wasm\.runtime\.v8\.active$" | awk -F': ' '{ print $2 }')"
  expect_at_least "wasm.envoy.wasm.runtime.v8.active" 1 "${active:-0}"
  end
done
