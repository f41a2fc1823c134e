//! Write-back: merges GLPI ids into Chatwoot's `additional_attributes`,
//! touching only the bridge's keys (invariant 4).
