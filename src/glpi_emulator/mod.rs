//! A GLPI emulator: an in-process HTTP server that answers like GLPI 10.0.19
//! for the subset the bridge uses (see `shared/reference/glpi-api.md`).
