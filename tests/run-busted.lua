-- busted's runner, inside ato: `bin/ato tests/run-busted.lua [busted options] SPEC...`
package.path = "tests/?.lua;" .. package.path
require "busted.runner" { standalone = false }
