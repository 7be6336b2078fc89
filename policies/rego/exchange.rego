# One (provider agency, person) pair of a family query: the agreement that covers it, the
# person's consent, the tier of disclosure, and the verdict on every requested field.
package junction.family

import rego.v1

# --- the sharing agreement --------------------------------------------------------------

# An agreement covers the exchange when it is active, names both agencies, the purpose and
# the legal basis, and the request time falls inside its validity.
covers(a, provider) if {
	a.status == "active"
	req.requester.agency_id in a.parties
	provider.agency_id in a.parties
	req.purpose in a.purposes
	basis_id in a.legal_bases
	time.parse_rfc3339_ns(a.valid_from) <= now_ns
	not ended(a)
}

ended(a) if {
	a.valid_to != null
	time.parse_rfc3339_ns(a.valid_to) <= now_ns
}

# Several may cover: the lowest id wins, within one id the highest version, and among
# identical (id, version) pairs the first listed. (Worked out with min/max rather than by
# sorting [id, -version] arrays, which rego-cpp orders wrongly.)
agreement_for(provider) := provider.agreements[index] if {
	covering := [i | a := provider.agreements[i]; covers(a, provider)]
	count(covering) > 0
	first_id := min({provider.agreements[i].id | some i in covering})
	same_id := [i | some i in covering; provider.agreements[i].id == first_id]
	newest := max({provider.agreements[i].version | some i in same_id})
	index := min({i | some i in same_id; provider.agreements[i].version == newest})
}

# --- consent ----------------------------------------------------------------------------

record_state(r) := "expired" if {
	r.state == "given"
	r.expires_at != null
	time.parse_rfc3339_ns(r.expires_at) <= now_ns
} else := r.state

# The strongest statement the person has made for this purpose with this agency wins:
# withdrawn, then refused, then a live consent, then an expired one; otherwise not sought.
consent_state(provider, person) := array.concat(found, ["not_sought"])[0] if {
	states := {record_state(r) |
		some r in person.consents
		r.purpose == req.purpose
		r.agency_id == provider.agency_id
	}
	found := [s | some s in ["withdrawn", "refused", "given", "expired"]; s in states]
}

consent_denials(state) := {concat("_", ["consent", state])} if {
	req.legal_basis == "consent"
	state != "given"
} else := {concat("_", ["consent", state, "no_override"])} if {
	req.legal_basis == "public_task"
	state in {"refused", "withdrawn"}
	not override_given
} else := set()

consent_overridden(state) if {
	req.legal_basis == "public_task"
	state in {"refused", "withdrawn"}
	override_given
}

# --- special category and offence data --------------------------------------------------

claimed_condition(kind) := {c |
	some c in object.get(req, "conditions", [])
	catalogue.conditions[c].kind == kind
	c in purpose.conditions
}

reason_not_needed(c) if not catalogue.conditions[c].requires_reason_without_consent

reason_not_needed(_) if req.legal_basis == "consent"

reason_not_needed(_) if catalogue.consent_not_sought_reasons[req.consent_not_sought_reason]

condition_met(kind) if {
	some c in claimed_condition(kind)
	reason_not_needed(c)
}

sensitivity_code("special_category") := "special_category_no_condition"

sensitivity_code("criminal_offence") := "offence_data_no_condition"

# A field of this sensitivity may go, or the code saying why not.
sensitivity_verdict(s) := "ok" if s == "ordinary"

sensitivity_verdict(s) := "ok" if {
	s != "ordinary"
	condition_met(s)
}

sensitivity_verdict(s) := "consent_not_sought_reason_missing" if {
	s != "ordinary"
	not condition_met(s)
	count(claimed_condition(s)) > 0
}

sensitivity_verdict(s) := sensitivity_code(s) if {
	s != "ordinary"
	count(claimed_condition(s)) == 0
}

verdicts := {s: sensitivity_verdict(s) | some s in ["ordinary", "special_category", "criminal_offence"]}

# --- fields -----------------------------------------------------------------------------

# The verdict on a field before the person's own restrictions: the same for every person
# at one agency, so it is worked out once per agency.
field_code(f, offered, allow, agreed) := "field_not_offered" if {
	not offered[f]
} else := "not_in_purpose" if {
	not f in allow
} else := "break_glass_reduced_set" if {
	break_glass
	not f in catalogue.break_glass.fields
} else := "not_in_agreement" if {
	not break_glass
	not f in agreed
} else := verdicts[offered[f]] if {
	verdicts[offered[f]] != "ok"
} else := "released"

# --- one agency -------------------------------------------------------------------------

agency_denials(provider, agreement) := {"agency_type_not_in_purpose" |
	not purpose.field_allow[provider.agency_type]
} | {"no_active_agreement" |
	not break_glass
	agreement == null
}

agreement_or_null(provider) := a if {
	not break_glass
	a := agreement_for(provider)
} else := null

# Everything about one provider that does not depend on the person.
agency_context(provider) := {
	"agency_id": provider.agency_id,
	"requested": requested,
	"agreement": agreement_ref,
	"denials": agency_denials(provider, agreement),
	"tier": tier,
	"codes": codes,
} if {
	requested := sort({f | some f in provider.requested_fields})
	agreement := agreement_or_null(provider)
	agreement_ref := agreement_summary(agreement)
	tier := object.get(purpose.tiers, provider.agency_type, "full")
	codes := agency_codes(provider, requested, agreement, tier)
}

agreement_summary(null) := null

agreement_summary(a) := {"id": a.id, "version": a.version} if a != null

agreed_fields(null) := []

agreed_fields(a) := a.fields if a != null

agency_codes(_, requested, _, "known_to_service") := {f: "known_to_service_only" | some f in requested}

agency_codes(provider, requested, agreement, "full") := {f: field_code(f, offered, allow, agreed) |
	offered := {fd.name: fd.sensitivity | some fd in provider.fields}
	allow := object.get(purpose.field_allow, provider.agency_type, [])
	agreed := agreed_fields(agreement)
	some f in requested
}

# --- one exchange -----------------------------------------------------------------------

# The code every withheld field carries when the whole exchange is refused.
pair_priority := [
	"agency_type_not_in_purpose",
	"no_active_agreement",
	"consent_withdrawn",
	"consent_refused",
	"consent_expired",
	"consent_not_sought",
	"consent_withdrawn_no_override",
	"consent_refused_no_override",
]

refused(ctx, person, codes, lead) := {
	"agency_id": ctx.agency_id,
	"person_ref": person.ref,
	"allow": false,
	"tier": "none",
	"permitted_fields": [],
	"withheld": [{"field": f, "code": lead, "text": lead_text} | some f in ctx.requested],
	"obligations": [],
	"reasons": [reason(c) | some c in codes],
	"agreement": ctx.agreement,
	"retention_days": retention_days,
} if {
	lead_text := reason(lead).text
}

request_refused_exchange(provider, person) := refused(
	{"agency_id": provider.agency_id, "requested": sort({f | some f in provider.requested_fields}), "agreement": null},
	person, ["request_refused"], "request_refused",
)

exchange(ctx, provider, person) := exchange_in_state(ctx, person, consent_state(provider, person))

exchange_in_state(ctx, person, state) := refused(ctx, person, sort(denials), lead) if {
	denials := ctx.denials | consent_denials(state)
	count(denials) > 0
	lead := [c | some c in pair_priority; c in denials][0]
} else := granted(ctx, person, state)

granted(ctx, person, state) := {
	"agency_id": ctx.agency_id,
	"person_ref": person.ref,
	"allow": allow,
	"tier": ctx.tier,
	"permitted_fields": permitted,
	"withheld": withheld,
	"obligations": exchange_obligations(allow, state),
	"reasons": exchange_reasons(allow, ctx.tier, state),
	"agreement": ctx.agreement,
	"retention_days": retention_days,
} if {
	restricted := object.get(person, "restricted_fields", [])
	held_back := {f: "restricted_by_person" | some f in restricted; ctx.codes[f] == "released"}
	codes := object.union(ctx.codes, held_back)
	permitted := [f | some f in ctx.requested; codes[f] == "released"]
	withheld := [{"field": f, "code": codes[f], "text": reason(codes[f]).text} |
		some f in ctx.requested
		codes[f] != "released"
	]
	allow := granted_allow(ctx.tier, permitted)
}

granted_allow("known_to_service", _) := true

granted_allow("full", permitted) := count(permitted) > 0

exchange_obligations(false, _) := []

exchange_obligations(true, state) := array.concat(
	[o | break_glass; some o in break_glass_obligations],
	[obligation("record_consent_override") | consent_overridden(state)],
)

basis_reason := "basis_consent_given" if req.legal_basis == "consent"

basis_reason := "basis_statutory_gateway" if req.legal_basis == "public_task"

exchange_reasons(false, _, _) := [reason("no_fields_permitted")]

exchange_reasons(true, tier, state) := [reason(c) | some c in codes] if {
	codes := array.concat(
		array.concat([basis_reason], [c | c := "break_glass_in_force"; break_glass]),
		array.concat(
			array.concat(
				[c | c := "agreement_in_force"; not break_glass],
				[c | c := "consent_override_recorded"; consent_overridden(state)],
			),
			[c | c := "known_to_service_only"; tier == "known_to_service"],
		),
	)
}
