# Every test is its own process under ctest.

# C unit tests.
foreach(name envfile config log metrics export hashpool procfs spool txt probe hash frame transfer rdma recvdir endpoint receiver trust control minisig update_state)
  add_executable(test_${name} tests/unit/test_${name}.c)
  target_link_libraries(test_${name} PRIVATE nodelua_core)
  if(NODELUA_SANITIZE OR NODELUA_FUZZ)
    # Sanitizers own malloc: the allocation count is for the plain build.
    target_compile_definitions(test_${name} PRIVATE NODELUA_SANITIZE)
  endif()
  add_test(NAME unit_${name} COMMAND test_${name})
  set_tests_properties(unit_${name} PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
endforeach()
target_compile_definitions(test_minisig PRIVATE
  FIXTURES="${CMAKE_SOURCE_DIR}/tests/fixtures/update")

# busted specs under the stock interpreter, requiring the loadable module.
find_program(LUA54_INTERPRETER NAMES lua5.4 lua54 lua)
find_program(BUSTED NAMES busted)
find_program(LUACHECK NAMES luacheck)
if(NOT LUA54_INTERPRETER OR NOT BUSTED)
  message(FATAL_ERROR "lua5.4 and busted are needed for the specs: run scripts/install-deps.sh")
endif()
set(SPEC_ENV
  "LUA_CPATH=${CMAKE_BINARY_DIR}/lua/?.so\;\;"
  "LUA_PATH=${CMAKE_SOURCE_DIR}/lua/?.lua\;${CMAKE_SOURCE_DIR}/lua/?/init.lua\;${CMAKE_SOURCE_DIR}/spec/?.lua\;\;"
  "NODELUA_BIN=$<TARGET_FILE:nodelua>"
  "NODELUA_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
if(NODELUA_SANITIZE AND NOT APPLE)
  # The module is instrumented but lua5.4 is not: the sanitizer runtimes must
  # be loaded first. Leaks of the uninstrumented interpreter are not ours.
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                  OUTPUT_VARIABLE ASAN_LIB OUTPUT_STRIP_TRAILING_WHITESPACE)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                  OUTPUT_VARIABLE UBSAN_LIB OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND SPEC_ENV "LD_PRELOAD=${ASAN_LIB}:${UBSAN_LIB}" "ASAN_OPTIONS=detect_leaks=0")
elseif(NODELUA_SANITIZE AND APPLE)
  # Apple clang: the same through dyld (not verified here: no macOS machine).
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libclang_rt.asan_osx_dynamic.dylib
                  OUTPUT_VARIABLE ASAN_LIB OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND SPEC_ENV "DYLD_INSERT_LIBRARIES=${ASAN_LIB}")
endif()
add_test(NAME busted
  COMMAND ${LUA54_INTERPRETER} ${BUSTED} --output=TAP ${CMAKE_SOURCE_DIR}/spec
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(busted PROPERTIES ENVIRONMENT "${SPEC_ENV}" LABELS lua)

if(LUACHECK)
  add_test(NAME luacheck
    COMMAND ${LUACHECK} --codes lua spec examples tests/integration
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(luacheck PROPERTIES LABELS lint)
else()
  message(FATAL_ERROR "luacheck is needed: run scripts/install-deps.sh")
endif()

find_program(CLANG_FORMAT NAMES clang-format clang-format-14 clang-format-15 clang-format-16)
if(CLANG_FORMAT)
  file(GLOB_RECURSE NL_C_SOURCES CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/src/*.c ${CMAKE_SOURCE_DIR}/src/*.h
       ${CMAKE_SOURCE_DIR}/tests/*.c ${CMAKE_SOURCE_DIR}/tests/*.h)
  add_test(NAME clang_format COMMAND ${CLANG_FORMAT} --dry-run --Werror ${NL_C_SOURCES})
  set_tests_properties(clang_format PROPERTIES LABELS lint)
else()
  add_test(NAME clang_format COMMAND sh -c "echo 'SKIPPED: no clang-format here'; exit 77")
  set_tests_properties(clang_format PROPERTIES LABELS lint SKIP_RETURN_CODE 77)
endif()

# The include rules of docs/architecture.md.
add_test(NAME layers COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/check-layers.sh)
set_tests_properties(layers PROPERTIES LABELS lint)

# The macOS compile check (scripts/check-macos.sh): every C file of the
# macOS build compiled for aarch64-macos and x86_64-macos with zig cc; the
# part that needs Apple's frameworks says SKIPPED.
if(NOT NODELUA_SANITIZE AND NOT NODELUA_FUZZ AND NOT NODELUA_TSAN AND NOT APPLE)
  add_test(NAME macos_compile
    COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/check-macos.sh ${GEN_DIR}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  add_test(NAME macos_frameworks
    COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/check-macos.sh --frameworks ${GEN_DIR}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(macos_compile macos_frameworks PROPERTIES LABELS lint
    SKIP_RETURN_CODE 77)
endif()

# Integration tests: the real binary, real processes and signals.
foreach(name run_timers config_errors signals deploy install rdma_build)
  add_test(NAME integration_${name}
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/${name}.sh $<TARGET_FILE:nodelua>
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(integration_${name} PROPERTIES LABELS integration
    SKIP_RETURN_CODE 77)
endforeach()

# Metrics against the kernel, psutil and promtool.
find_program(PROMTOOL NAMES promtool HINTS ${CMAKE_SOURCE_DIR}/.deps/usr/bin)
if(NOT PROMTOOL)
  message(FATAL_ERROR "promtool is needed: run scripts/install-deps.sh")
endif()
add_test(NAME integration_metrics_prom
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/metrics_prom.sh $<TARGET_FILE:nodelua>)
set_tests_properties(integration_metrics_prom PROPERTIES LABELS integration
  ENVIRONMENT "PROMTOOL=${PROMTOOL}")
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  # The oracle is Debian's python3-psutil, for the system python.
  find_program(SYSTEM_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT SYSTEM_PYTHON)
    message(FATAL_ERROR "/usr/bin/python3 is needed: run scripts/install-deps.sh")
  endif()
  add_test(NAME integration_hash
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/hash.py $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_hash PROPERTIES LABELS integration)
  add_test(NAME integration_metrics_accuracy
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/metrics_accuracy.py
            $<TARGET_FILE:nodelua>)
  # It keeps one core busy and reads it: alone, so no other test skews it.
  set_tests_properties(integration_metrics_accuracy PROPERTIES LABELS integration RUN_SERIAL ON)
endif()

# The agent against a real, schema-validating receiver: normal flow, a 30 s
# outage, a kill -9 during an outage, error answers, Retry-After, a slow
# receiver, a full spool, bad clients of the endpoint.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME integration_agent_reporting
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/agent_reporting.py
            $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_agent_reporting PROPERTIES LABELS integration RUN_SERIAL ON
    TIMEOUT 600 ENVIRONMENT "PROMTOOL=${PROMTOOL}")
  # Node Exporter Full against node_exporter, through a real Prometheus
  # (Debian's packages, unpacked into .deps/ by install-deps.sh).
  find_program(NODE_EXPORTER NAMES prometheus-node-exporter node_exporter
               HINTS ${CMAKE_SOURCE_DIR}/.deps/usr/bin)
  find_program(PROMETHEUS NAMES prometheus HINTS ${CMAKE_SOURCE_DIR}/.deps/usr/bin)
  if(NOT NODE_EXPORTER OR NOT PROMETHEUS)
    message(FATAL_ERROR "node_exporter and prometheus are needed: run scripts/install-deps.sh")
  endif()
  add_test(NAME integration_dashboard
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/dashboard.py
            $<TARGET_FILE:nodelua> ${NODE_EXPORTER} ${PROMETHEUS})
  set_tests_properties(integration_dashboard PROPERTIES LABELS integration RUN_SERIAL ON
    TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()

# Fuzz targets: a bounded run of each, from its seed corpus.
if(NODELUA_FUZZ)
  foreach(name envfile procfs txt probe frame minisig)
    add_executable(fuzz_${name} tests/fuzz/fuzz_${name}.c)
    target_link_libraries(fuzz_${name} PRIVATE nodelua_core)
    target_compile_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(work ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
    add_test(NAME fuzz_${name}
      COMMAND ${CMAKE_COMMAND} -E env
              sh -c "mkdir -p '${work}' && exec '$<TARGET_FILE:fuzz_${name}>' -max_total_time=${NODELUA_FUZZ_SECONDS} -timeout=5 -rss_limit_mb=1024 '${work}' '${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name}'")
    set_tests_properties(fuzz_${name} PROPERTIES LABELS fuzz)
  endforeach()
endif()

# A valgrind leak check of a short run of the real binary.
find_program(VALGRIND NAMES valgrind)
if(VALGRIND AND NOT NODELUA_SANITIZE AND NOT NODELUA_FUZZ)
  # And of the agent: a few seconds of sampling, spooling (no API is up),
  # serving /metrics, then SIGTERM.
  add_test(NAME valgrind_agent
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/valgrind_agent.sh ${VALGRIND}
            $<TARGET_FILE:nodelua>)
  set_tests_properties(valgrind_agent PROPERTIES LABELS leak)
  add_test(NAME valgrind_run
    COMMAND ${VALGRIND} --quiet --leak-check=full --show-leak-kinds=definite,indirect
            --errors-for-leak-kinds=definite,indirect --error-exitcode=1
            $<TARGET_FILE:nodelua> run ${CMAKE_SOURCE_DIR}/examples/heartbeat.lua 3
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(valgrind_run PROPERTIES LABELS leak
    ENVIRONMENT "NODELUA_POLICY_DIR=${CMAKE_SOURCE_DIR}/examples/policy;NODELUA_SERVICE_ENV_FILE=")
endif()

# Discovery between "hosts" made of network namespaces, each with its own
# D-Bus and avahi-daemon on its own veth interfaces (scripts/nethosts.sh).
# It needs root; without, it says so and ctest shows it as not run.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME integration_discovery
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/discovery.py
            $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_discovery PROPERTIES LABELS integration RUN_SERIAL ON
    TIMEOUT 300 SKIP_RETURN_CODE 77)
  if(VALGRIND AND NOT NODELUA_SANITIZE AND NOT NODELUA_FUZZ)
    # It also runs `nodelua list` under valgrind, on one of its hosts.
    set_tests_properties(integration_discovery PROPERTIES
      ENVIRONMENT "VALGRIND=${VALGRIND}")
  endif()
endif()

# Files between a receiving agent and `nodelua send` over loopback: edge
# sizes and 1 GiB, wrong keys, bad names, kill -9 of either side 20 times
# with resumes, garbage to the port, a full disk (tmpfs, as root).
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME integration_transfer
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/transfer.py
            $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_transfer PROPERTIES LABELS integration RUN_SERIAL ON
    TIMEOUT 1500 SKIP_RETURN_CODE 77)
  # RDMA transfers: where a device is usable (the Soft-RoCE job of
  # .github/workflows/rdma.yml); SKIPPED elsewhere. Serial: rxe drops
  # completions under many queue pairs.
  add_test(NAME integration_rdma
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/rdma.py
            $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_rdma PROPERTIES LABELS "integration;rdma" RUN_SERIAL ON
    TIMEOUT 1200 SKIP_RETURN_CODE 77)
  if(VALGRIND AND NOT NODELUA_SANITIZE AND NOT NODELUA_FUZZ)
    # It also runs one `nodelua send` under valgrind.
    set_tests_properties(integration_transfer PROPERTIES
      ENVIRONMENT "VALGRIND=${VALGRIND}")
  endif()
endif()

# The REPL through a pseudo-terminal (pexpect): completion, list, send with
# its progress bar, metrics, history.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  add_test(NAME integration_repl_pty
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/repl_pty.py
            $<TARGET_FILE:nodelua>)
  set_tests_properties(integration_repl_pty PROPERTIES LABELS integration TIMEOUT 300)
endif()
# `nodelua repl send` against a lying agent: it sends only what was typed.
add_test(NAME integration_repl_trust
  COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/repl_trust.py
          $<TARGET_FILE:nodelua>)
set_tests_properties(integration_repl_trust PROPERTIES LABELS integration TIMEOUT 120)

# Self-update: a fake GitHub API, real minisign keys, and a release of this
# same build as version 99.0.0 (one more link: src/version.c.in).
set(NODELUA_NEXT_VERSION 99.0.0)
set(NODELUA_VERSION_SAVED ${NODELUA_VERSION})
set(NODELUA_VERSION ${NODELUA_NEXT_VERSION})
configure_file(src/version.c.in ${GEN_DIR}/nl_version_next.c @ONLY)
set(NODELUA_VERSION ${NODELUA_VERSION_SAVED})
add_library(nodelua_version_next STATIC ${GEN_DIR}/nl_version_next.c)
target_include_directories(nodelua_version_next PUBLIC src)
nodelua_executable(nodelua_next nodelua_version_next)
find_program(MINISIGN NAMES minisign)
if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
  if(NOT MINISIGN)
    message(FATAL_ERROR "minisign is needed for the self-update tests: run scripts/install-deps.sh")
  endif()
  add_test(NAME integration_update
    COMMAND ${SYSTEM_PYTHON} ${CMAKE_SOURCE_DIR}/tests/integration/update.py
            $<TARGET_FILE:nodelua> $<TARGET_FILE:nodelua_next>)
  set_tests_properties(integration_update PROPERTIES LABELS integration TIMEOUT 900
    ENVIRONMENT "MINISIGN=${MINISIGN};NODELUA_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endif()

# The service under a real systemd, in a container the test boots
# (systemd-nspawn on a cached mmdebstrap root, private network): the plain
# build only, since the container has no sanitizer runtimes.
if(CMAKE_SYSTEM_NAME STREQUAL "Linux" AND NOT NODELUA_SANITIZE AND NOT NODELUA_TSAN)
  add_test(NAME integration_service_nspawn
    COMMAND bash ${CMAKE_SOURCE_DIR}/tests/integration/service_nspawn.sh $<TARGET_FILE:nodelua>
            $<TARGET_FILE:nodelua_next>
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(integration_service_nspawn PROPERTIES LABELS "integration;service"
    SKIP_RETURN_CODE 77 TIMEOUT 600 RUN_SERIAL ON)
endif()
