# gateway/outbound.cmake - the outbound policy stack (breaker, retry, rate limit, slot cache,
# policy wrapper) and observability (metrics, trace context). Included from
# gateway/CMakeLists.txt right after the gwcore library is defined.
target_sources(gwcore PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/gw_breaker.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_retry.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_ratelimit.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_slotcache.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_trace.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/gw_policy.c)

if(BB_TESTS)
  foreach(t test_gw_breaker test_gw_retry test_gw_ratelimit test_gw_slotcache test_gw_trace
            test_gw_metrics test_gw_policy)
    add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
    target_link_libraries(${t} PRIVATE gwcore PkgConfig::CRITERION)
    target_compile_options(${t} PRIVATE -Wno-missing-prototypes)
    add_test(NAME ${t} COMMAND ${t} --jobs 2)
  endforeach()

  # promtool check metrics on a sample exposition; skipped (exit 77) without promtool.
  add_executable(test_gw_metrics_sample ${CMAKE_CURRENT_LIST_DIR}/test_gw_metrics_sample.c)
  target_link_libraries(test_gw_metrics_sample PRIVATE gwcore)
  add_test(NAME test_gw_promtool
           COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/test_promtool.sh
                   $<TARGET_FILE:test_gw_metrics_sample>)
  set_tests_properties(test_gw_promtool PROPERTIES SKIP_RETURN_CODE 77)
endif()
