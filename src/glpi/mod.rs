//! The GLPI legacy REST API client (`…/apirest.php`), GLPI 10.0 and 11.
