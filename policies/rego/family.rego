# Family query policy: one evaluation decides whether a caller may make a family query
# (the submit check) and, for every (provider agency, person) pair, which fields may be
# requested and why.
#
# Entry point: data.junction.family.decision
#
# Per-request facts come in the input (the caller, the purpose, the claimed legal basis,
# the agreements between the requester and each provider ONLY, each person's consent
# records and restrictions), so decision time does not grow with the number of agreements
# in the region. The catalogues (purposes, gateways, conditions, break-glass, reason
# texts) are bundle data under data.catalogue.
#
# Deny by default: every allow below needs every rule that grants it to hold.
package junction.family

import rego.v1

catalogue := data.catalogue

req := input.request

purpose := catalogue.purposes[req.purpose]

now_ns := time.parse_rfc3339_ns(req.time)

default retention_days := 0

retention_days := purpose.retention_days

# --- small helpers ---------------------------------------------------------------------

non_blank(s) if {
	is_string(s)
	trim_space(s) != ""
}

reason(code) := {"code": code, "text": object.get(catalogue.reason_codes, code, code)}

obligation(code) := {"code": code, "text": catalogue.obligations[code].text}

# --- break-glass ------------------------------------------------------------------------

break_glass if {
	bg := object.get(req, "break_glass", null)
	is_object(bg)
}

break_glass_limit_ns := catalogue.break_glass.time_limit_minutes * 60000000000

# --- legal basis ------------------------------------------------------------------------

# The id a purpose and an agreement list: "consent" or the statutory gateway.
basis_id := "consent" if req.legal_basis == "consent"

basis_id := req.gateway if {
	req.legal_basis == "public_task"
	non_blank(req.gateway)
}

basis_valid if req.legal_basis == "consent"

basis_valid if {
	req.legal_basis == "public_task"
	catalogue.gateways[req.gateway]
}

override_given if non_blank(object.get(req, "override_reason", null))

override_given if break_glass

# --- the submit check -------------------------------------------------------------------

submit_denials contains "unknown_purpose" if not purpose

submit_denials contains "role_not_permitted" if {
	not break_glass
	not req.requester.role in purpose.roles
}

submit_denials contains "legal_basis_unknown" if not req.legal_basis in {"consent", "public_task"}

submit_denials contains "gateway_required" if {
	req.legal_basis == "public_task"
	not non_blank(object.get(req, "gateway", null))
}

submit_denials contains "gateway_unknown" if {
	req.legal_basis == "public_task"
	non_blank(req.gateway)
	not catalogue.gateways[req.gateway]
}

submit_denials contains "legal_basis_not_for_purpose" if {
	purpose
	basis_valid
	not basis_id in purpose.legal_bases
}

submit_denials contains "case_reference_required" if {
	purpose.case_reference_required
	not non_blank(object.get(req, "case_reference", null))
}

submit_denials contains "justification_required" if {
	not non_blank(object.get(req, "justification", null))
}

submit_denials contains "break_glass_role_not_permitted" if {
	break_glass
	not req.requester.role in catalogue.break_glass.roles
}

submit_denials contains "break_glass_reason_code_unknown" if {
	break_glass
	not catalogue.break_glass.reason_codes[req.break_glass.reason_code]
}

submit_denials contains "break_glass_text_required" if {
	break_glass
	not non_blank(object.get(req.break_glass, "text", null))
}

submit_denials contains "break_glass_expired" if {
	break_glass
	now_ns - time.parse_rfc3339_ns(req.break_glass.started_at) >= break_glass_limit_ns
}

default submit_allow := false

submit_allow if count(submit_denials) == 0

submit_reasons := [reason(c) | some c in sort(submit_denials)] if not submit_allow

submit_reasons := [reason("request_permitted"), reason("break_glass_in_force")] if {
	submit_allow
	break_glass
}

submit_reasons := [reason("request_permitted")] if {
	submit_allow
	not break_glass
}

break_glass_obligations := [obligation("alert_ig_immediately"), obligation("retrospective_review")]

submit_obligations := break_glass_obligations if {
	submit_allow
	break_glass
}

submit_obligations := [] if not submit_allow

submit_obligations := [] if {
	submit_allow
	not break_glass
}

# --- the whole decision -----------------------------------------------------------------

exchanges := [ex |
	some provider in input.providers
	count(provider.persons) > 0
	some ex in agency_exchanges(agency_context(provider), provider.persons)
] if submit_allow

exchanges := [ex |
	some provider in input.providers
	some person in provider.persons
	ex := request_refused_exchange(provider, person)
] if not submit_allow

decision := {
	"submit": {
		"allow": submit_allow,
		"reasons": submit_reasons,
		"obligations": submit_obligations,
	},
	"exchanges": exchanges,
}
