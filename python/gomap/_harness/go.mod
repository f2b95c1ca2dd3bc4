module gomapharness

go 1.19
