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
agreement_for(provider) := pick_agreement(provider.agreements, covering) if {
	covering := [i | a := provider.agreements[i]; covers(a, provider)]
	count(covering) > 0
}

pick_agreement(agreements, covering) := agreements[covering[0]] if {
	count(covering) == 1
} else := agreements[index] if {
	first_id := min({agreements[i].id | some i in covering})
	same_id := [i | some i in covering; agreements[i].id == first_id]
	newest := max({agreements[i].version | some i in same_id})
	index := min({i | some i in same_id; agreements[i].version == newest})
}

# --- consent ----------------------------------------------------------------------------

record_state(r) := "expired" if {
	r.state == "given"
	r.expires_at != null
	time.parse_rfc3339_ns(r.expires_at) <= now_ns
} else := r.state

# The strongest statement the person has made for this purpose with this agency wins:
# withdrawn, then refused, then a live consent, then an expired one; otherwise not sought.
consent_state(agency_id, person) := strongest({record_state(r) |
	some r in person.consents
	r.purpose == req.purpose
	r.agency_id == agency_id
})

strongest(states) := "withdrawn" if "withdrawn" in states
else := "refused" if "refused" in states
else := "given" if "given" in states
else := "expired" if "expired" in states
else := "not_sought"

# Whether this consent state lets the exchange go ahead on the request's legal basis.
consent_permits(state) if {
	req.legal_basis == "consent"
	state == "given"
}

consent_permits(state) if {
	req.legal_basis == "public_task"
	not state in {"refused", "withdrawn"}
}

consent_permits(_) if {
	req.legal_basis == "public_task"
	override_given
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

# Everything about one provider that does not depend on the person, worked out once per
# agency so that each person only adds their consent and restrictions.
agency_context(provider) := {
	"agency_id": provider.agency_id,
	"requested": requested,
	"agreement": agreement_summary(agreement),
	"denials": agency_denials(provider, agreement),
	"tier": tier,
	"codes": codes,
	"permitted": [f | some f in requested; codes[f] == "released"],
	"withheld": withheld_list(requested, codes),
	"allowed": allowed_variants[tier],
} if {
	requested := sort({f | some f in provider.requested_fields})
	agreement := agreement_or_null(provider)
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

withheld_list(requested, codes) := [{"field": f, "code": codes[f], "text": reason(codes[f]).text} |
	some f in requested
	codes[f] != "released"
]

# The reasons and obligations of an allowed exchange, by tier and by whether a refusal of
# consent was overridden: at most four variants a request, so they are worked out once.
allowed_variants[tier] := {false: allowed_parts(tier, false), true: allowed_parts(tier, true)} if {
	some tier in ["full", "known_to_service"]
}

allowed_parts(tier, overridden) := {
	"reasons": [reason(c) | some c in array.concat(base_allow_codes, extra_allow_codes(tier, overridden))],
	"obligations": allow_obligations(overridden),
}

base_allow_codes := [basis_reason, "break_glass_in_force"] if break_glass else := [basis_reason, "agreement_in_force"]

extra_allow_codes("full", false) := []

extra_allow_codes("full", true) := ["consent_override_recorded"]

extra_allow_codes("known_to_service", false) := ["known_to_service_only"]

extra_allow_codes("known_to_service", true) := ["consent_override_recorded", "known_to_service_only"]

base_allow_obligations := break_glass_obligations if break_glass else := []

allow_obligations(false) := base_allow_obligations

allow_obligations(true) := array.concat(base_allow_obligations, [obligation("record_consent_override")])

basis_reason := "basis_consent_given" if req.legal_basis == "consent"

basis_reason := "basis_statutory_gateway" if req.legal_basis == "public_task"

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

refused(ctx, ref, codes, lead) := {
	"agency_id": ctx.agency_id,
	"person_ref": ref,
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
	person.ref, ["request_refused"], "request_refused",
)

# All exchanges with one agency. People at one agency mostly differ only in their consent
# state, so the exchange is worked out once per state present and then named for each
# person; only a person whose own restrictions bite gets a decision of their own.
agency_exchanges(ctx, persons) := [personalise(templates[pair[1]], ctx, pair[0], pair[1]) |
	some pair in pairs
] if {
	# Pairs rather than indexes into two lists: rego-cpp loses index-correlated
	# comprehensions inside functions.
	pairs := [[person, consent_state(ctx.agency_id, person)] | some person in persons]
	templates := {state: exchange_in_state(ctx, null, state, set()) | some state in {p[1] | some p in pairs}}
}

personalise(template, ctx, person, state) := object.union(template, {"person_ref": person.ref}) if {
	count(person.restricted_fields) == 0
} else := exchange_in_state(ctx, person.ref, state, hits) if {
	template.tier != "none"
	hits := restricted_hits(ctx, person)
	count(hits) > 0
} else := object.union(template, {"person_ref": person.ref})

exchange_in_state(ctx, ref, state, hits) := granted(ctx, ref, hits, effect.overridden) if {
	effect := consent_effect[state]
	count(ctx.denials) == 0
	effect.permits
} else := refused(ctx, ref, sort(denials), lead) if {
	denials := ctx.denials | consent_effect[state].denials
	lead := [c | some c in pair_priority; c in denials][0]
}

# The fields this person has restricted that would otherwise have been released.
restricted_hits(ctx, person) := {f |
	some f in object.get(person, "restricted_fields", [])
	ctx.codes[f] == "released"
}

permits_flag(state) := true if consent_permits(state) else := false

overridden_flag(state) := true if consent_overridden(state) else := false

# What each consent state means for this request: at most five, so worked out once.
consent_effect[state] := {
	"permits": permits_flag(state),
	"overridden": overridden_flag(state),
	"denials": consent_denials(state),
} if {
	some state in ["given", "withdrawn", "expired", "refused", "not_sought"]
}

granted(ctx, ref, hits, overridden) := exchange_result(ctx, ref, ctx.permitted, ctx.withheld, overridden) if {
	count(hits) == 0
} else := exchange_result(ctx, ref, permitted, withheld_list(ctx.requested, codes), overridden) if {
	codes := object.union(ctx.codes, {f: "restricted_by_person" | some f in hits})
	permitted := [f | some f in ctx.requested; codes[f] == "released"]
}

exchange_result(ctx, ref, permitted, withheld, overridden) := {
	"agency_id": ctx.agency_id,
	"person_ref": ref,
	"allow": true,
	"tier": ctx.tier,
	"permitted_fields": permitted,
	"withheld": withheld,
	"obligations": ctx.allowed[overridden].obligations,
	"reasons": ctx.allowed[overridden].reasons,
	"agreement": ctx.agreement,
	"retention_days": retention_days,
} if {
	granted_allow(ctx.tier, permitted)
} else := {
	"agency_id": ctx.agency_id,
	"person_ref": ref,
	"allow": false,
	"tier": ctx.tier,
	"permitted_fields": permitted,
	"withheld": withheld,
	"obligations": [],
	"reasons": [reason("no_fields_permitted")],
	"agreement": ctx.agreement,
	"retention_days": retention_days,
}

granted_allow("known_to_service", _) := true

granted_allow("full", permitted) if count(permitted) > 0
