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
#
# The answer is normalised. People at one agency mostly differ only in the outcome of
# their consent on this request (it lets the exchange go ahead, with or without a
# recorded override, or it is the code that refuses it), so for each agency the policy
# decides one exchange (a template) per outcome that occurs, and one more for each set of
# fields that somebody restricted and the exchange would otherwise release; for each
# person, in the order asked, it names the (outcome, restricted fields) pair of their
# template. policies/decide.py expands this into one decision per (agency, person) by
# copying what the policy decided, and refuses everything if a person's template is
# missing or the pairs answered are not the pairs asked:
#
#   {"submit": {"allow": bool, "reasons": [...], "obligations": [...]},
#    "agencies": [{"agency_id": id,
#                  "templates": [{"outcome": o, "restricted": [f, ...], "exchange": {...}}],
#                  "persons": [[ref, o, [f, ...]], ...]}, ...]}
#
# An exchange is {"allow", "tier", "permitted_fields", "withheld", "obligations",
# "reasons", "agreement", "retention_days"}. Agencies asked about nobody are left out.
#
# On cost (measured with regorus, which evaluates the policy by walking its syntax tree):
# every call, of a function or of a built-in such as count() or object.get(), costs about
# 2 us, as much as ten comparisons; a comprehension or an object costs about 1 us; a rule
# without arguments is worked out once per evaluation and then reused. So whatever holds
# for the whole request is a rule, whatever holds for one agency is worked out once per
# agency, each person costs one comprehension, and hot paths call as little as they can.
# The broker compiles this decision to regorus's virtual machine, which runs it in about
# half the interpreter's time; see exchange.rego for the two things it needs written with
# care.
#
# rego-cpp (the regopy engine) loses function arguments and outer variables that a
# comprehension uses directly in its output term, so every comprehension here binds what
# it outputs inside its own body.
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

# The request's free-text fields that hold more than blanks, each checked once.
filled contains name if {
	some name in ["gateway", "case_reference", "justification", "override_reason"]
	non_blank(object.get(req, name, null))
}

reason_texts := catalogue.reason_codes

reason(code) := {"code": code, "text": object.get(reason_texts, code, code)}

obligation(code) := {"code": code, "text": catalogue.obligations[code].text}

# --- break-glass ------------------------------------------------------------------------

break_glass if is_object(req.break_glass)

break_glass_limit_ns := catalogue.break_glass.time_limit_minutes * 60000000000

# --- legal basis ------------------------------------------------------------------------

# The id a purpose and an agreement list: "consent" or the statutory gateway.
basis_id := "consent" if req.legal_basis == "consent"

basis_id := req.gateway if {
	req.legal_basis == "public_task"
	"gateway" in filled
}

basis_valid if req.legal_basis == "consent"

basis_valid if {
	req.legal_basis == "public_task"
	catalogue.gateways[req.gateway]
}

override_given if "override_reason" in filled

override_given if break_glass

# --- the submit check -------------------------------------------------------------------

# Every rule the request breaks. (One rule made of one-line sets rather than a rule body
# per denial: regorus charges more for each body of a multi-body rule.)
submit_denials := {"unknown_purpose" | not purpose} | {"role_not_permitted" |
	not break_glass
	not req.requester.role in purpose.roles
} | {"legal_basis_unknown" |
	not req.legal_basis in {"consent", "public_task"}
} | {"gateway_required" |
	req.legal_basis == "public_task"
	not "gateway" in filled
} | {"gateway_unknown" |
	req.legal_basis == "public_task"
	"gateway" in filled
	not catalogue.gateways[req.gateway]
} | {"legal_basis_not_for_purpose" |
	purpose
	basis_valid
	not basis_id in purpose.legal_bases
} | {"case_reference_required" |
	purpose.case_reference_required
	not "case_reference" in filled
} | {"justification_required" |
	not "justification" in filled
} | {"break_glass_role_not_permitted" |
	break_glass
	not req.requester.role in catalogue.break_glass.roles
} | {"break_glass_reason_code_unknown" |
	break_glass
	not catalogue.break_glass.reason_codes[req.break_glass.reason_code]
} | {"break_glass_text_required" |
	break_glass
	not non_blank(object.get(req.break_glass, "text", null))
} | {"break_glass_expired" |
	break_glass
	now_ns - time.parse_rfc3339_ns(req.break_glass.started_at) >= break_glass_limit_ns
}

default submit_allow := false

submit_allow if count(submit_denials) == 0

submit_reasons := [reason(c) | some c in sort(submit_denials)] if {
	not submit_allow
} else := [reason("request_permitted"), reason("break_glass_in_force")] if {
	break_glass
} else := [reason("request_permitted")]

break_glass_obligations := [obligation("alert_ig_immediately"), obligation("retrospective_review")]

submit_obligations := [] if {
	not submit_allow
} else := break_glass_obligations if {
	break_glass
} else := []

# --- the whole decision -----------------------------------------------------------------

# One entry per agency asked about somebody (see the top of this file for its shape).
agencies := [answer |
	some provider in input.providers
	provider.persons != []
	answer := agency_answer(provider, facts)
] if submit_allow

agencies := [answer |
	some provider in input.providers
	provider.persons != []
	answer := request_refused_agency(provider)
] if not submit_allow

decision := {
	"submit": {
		"allow": submit_allow,
		"reasons": submit_reasons,
		"obligations": submit_obligations,
	},
	"agencies": agencies,
}
