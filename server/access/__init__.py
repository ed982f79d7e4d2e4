"""Who may do what: tokens and origins, per-client limits, the call admission, the spending cap
and the staff rule. Every refusal the service makes before any work starts is decided here."""
