//! Workers: run outbox jobs against GLPI, one conversation at a time each,
//! many conversations at once, all paced by the GLPI client's rate limiter.
