# cmake -DSCDOC=... -DIN=PAGE.scd -DOUT=PAGE -DVERSION=X.Y.Z -P scdoc.cmake
# Build one man page: @VERSION@ in the source becomes the project version,
# then scdoc turns it into roff.  Nothing is left at OUT when scdoc fails.
cmake_minimum_required(VERSION 3.25)
get_filename_component(dir ${OUT} DIRECTORY)
file(MAKE_DIRECTORY ${dir})
file(READ ${IN} text)
string(REPLACE "@VERSION@" "${VERSION}" text "${text}")
file(WRITE ${OUT}.scd.tmp "${text}")
execute_process(COMMAND ${SCDOC} INPUT_FILE ${OUT}.scd.tmp OUTPUT_FILE ${OUT}.tmp
                RESULT_VARIABLE rc)
file(REMOVE ${OUT}.scd.tmp)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "scdoc failed on ${IN} (${rc})")
endif()
file(RENAME ${OUT}.tmp ${OUT})
