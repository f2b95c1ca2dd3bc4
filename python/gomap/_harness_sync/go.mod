module gomap/harness_sync

go 1.19
