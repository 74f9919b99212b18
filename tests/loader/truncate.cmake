# cmake -DIN=<file> -DOUT=<file> -P truncate.cmake: copy the first half of
# IN to OUT (a shared object cut short, for the loader's not-a-plugin case).
file(SIZE ${IN} size)
math(EXPR half "${size} / 2")
execute_process(COMMAND head -c ${half} ${IN} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "truncate.cmake: head failed on ${IN}")
endif()
