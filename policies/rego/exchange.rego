# The exchanges of a family query: for each provider agency, the agreement that covers
# it and the verdict on every requested field; for each person, the outcome of their
# consent and the fields they have restricted; and one exchange (a template) for each
# (consent outcome, restricted fields) pair that occurs at the agency.
#
# Written for regorus's costs (see the top of family.rego): tests are written out inline
# rather than in helpers called per agreement or per person, functions have one
# definition (an else-chain stops at the first body that holds, while every definition of
# a multi-definition function is evaluated), and emptiness is tested by comparison rather
# than with count().
#
# The broker runs this policy compiled to regorus's virtual machine (the RVM), which
# differs from OPA in two places this file steers around (tests/policies/test_property.py
# holds both engines to a plain-Python oracle):
# - a comprehension inside a comprehension must start with its iteration (`some`), not
#   with a test: one whose leading test fails drops the outer element, where OPA yields an
#   empty collection;
# - in an else-chain, a body that fails because a lookup is undefined (`v := m[k]`) makes
#   the whole function undefined instead of going on to the `else`: test the key first.
package junction.family

import rego.v1

# --- the request's facts ----------------------------------------------------------------

# What the per-agency and per-person functions read from the request and the catalogue,
# gathered into one object they take as an argument, so that everything they depend on
# is in one place and worked out once. Only used, and only defined, when the request
# itself is allowed.
facts := {
	"requester": req.requester.agency_id,
	"purpose": req.purpose,
	"basis_id": basis_id,
	"now_ns": now_ns,
	"break_glass": break_glass_active,
	"break_glass_fields": catalogue.break_glass.fields,
	"field_allow": purpose.field_allow,
	"tiers": purpose.tiers,
	"verdicts": verdicts,
	"consent_outcome": consent_outcome,
	"allowed": allowed,
	"no_fields_permitted": [reason("no_fields_permitted")],
	"reason_texts": reason_texts,
	"retention_days": retention_days,
}

default break_glass_active := false

break_glass_active if break_glass

# --- the sharing agreement --------------------------------------------------------------

# [the agreement relied on as {"id", "version"}, or null; the fields it covers; the code
# that refuses the exchange for want of an agreement, or null].
#
# An agreement covers the exchange when it is active, names both agencies, the purpose and
# the legal basis, and the request time falls inside its validity. Under break-glass no
# agreement is relied on and none is needed. (The test is written out in the
# comprehension rather than in a function called per agreement: a call costs as much as
# several tests.)
agreement_terms(provider, facts) := [null, [], null] if {
	facts.break_glass
} else := [{"id": a.id, "version": a.version}, a.fields, null] if {
	requester := facts.requester
	agency_id := provider.agency_id
	purpose_id := facts.purpose
	basis := facts.basis_id
	now := facts.now_ns
	ended := {i | a := provider.agreements[i]; a.valid_to != null; time.parse_rfc3339_ns(a.valid_to) <= now}
	covering := [i |
		a := provider.agreements[i]
		a.status == "active"
		requester in a.parties
		agency_id in a.parties
		purpose_id in a.purposes
		basis in a.legal_bases
		time.parse_rfc3339_ns(a.valid_from) <= now
		not i in ended
	]
	covering != []
	a := pick_agreement(provider.agreements, covering)
} else := [null, [], agreement_gap(provider, facts)]

# Why no agreement covers the exchange, when one would but for its state: of the
# agreements that name both agencies, the purpose and the legal basis and are active or
# suspended (a draft has never been in force, an ended one has been ended for good), each
# says "agreement_expired" when its end has passed, else "agreement_not_yet_in_force" when
# its start is still to come, else "agreement_suspended". Where several say different
# things the first in agreement_gaps wins, the one nearest to sharing: a suspension can be
# lifted at any time, an agreement not yet in force starts by itself, an expired one needs
# renewing. With none of them, "no_active_agreement". Only worked out for a refusal, so
# an active agreement here is outside its dates: within them it would cover the exchange.
agreement_gap(provider, facts) := [code | some code in agreement_gaps; code in found][0] if {
	requester := facts.requester
	agency_id := provider.agency_id
	purpose_id := facts.purpose
	basis := facts.basis_id
	now := facts.now_ns
	found := {code |
		some a in provider.agreements
		a.status in {"active", "suspended"}
		requester in a.parties
		agency_id in a.parties
		purpose_id in a.purposes
		basis in a.legal_bases
		code := agreement_gap_code(a, now)
	} | {"no_active_agreement"}
}

agreement_gaps := ["agreement_suspended", "agreement_not_yet_in_force", "agreement_expired", "no_active_agreement"]

agreement_gap_code(a, now) := "agreement_expired" if {
	a.valid_to != null
	time.parse_rfc3339_ns(a.valid_to) <= now
} else := "agreement_not_yet_in_force" if {
	time.parse_rfc3339_ns(a.valid_from) > now
} else := "agreement_suspended"

# Several may cover: the lowest id wins, within one id the highest version, and among
# identical (id, version) pairs the first listed. (Worked out with min/max rather than by
# sorting [id, -version] arrays, which rego-cpp orders wrongly.)
pick_agreement(agreements, covering) := agreements[covering[0]] if {
	count(covering) == 1
} else := agreements[index] if {
	first_id := min({id | some i in covering; id := agreements[i].id})
	newest := max({a.version | some i in covering; a := agreements[i]; a.id == first_id})
	index := min({i | some i in covering; a := agreements[i]; a.id == first_id; a.version == newest})
}

# --- consent ----------------------------------------------------------------------------

# A person's consent state is the strongest statement they have made for this purpose
# with this agency: withdrawn, then refused, then a live consent, then an expired one;
# otherwise not sought. It is the state of least rank among their records (see
# agency_persons).
consent_precedence := ["withdrawn", "refused", "given", "expired", "not_sought"]

consent_rank := {"withdrawn": 0, "refused": 1, "given": 2, "expired": 3, "not_sought": 4}

# What each consent state means for this request: "permit" (the exchange may go ahead),
# "override" (it may, because the request overrides a refusal or withdrawal of consent,
# which is recorded), or the code that refuses it. On consent, only a live consent
# permits; on a statutory gateway consent is not needed, but a refusal or withdrawal
# stands unless the request gives an override reason (break-glass counts as one).
consent_outcome := {
	"given": "permit",
	"withdrawn": "consent_withdrawn",
	"expired": "consent_expired",
	"refused": "consent_refused",
	"not_sought": "consent_not_sought",
} if {
	req.legal_basis == "consent"
} else := {
	"given": "permit",
	"withdrawn": "override",
	"expired": "permit",
	"refused": "override",
	"not_sought": "permit",
} if {
	req.legal_basis == "public_task"
	override_given
} else := {
	"given": "permit",
	"withdrawn": "consent_withdrawn_no_override",
	"expired": "permit",
	"refused": "consent_refused_no_override",
	"not_sought": "permit",
} if {
	req.legal_basis == "public_task"
	not override_given
}

# --- special category and offence data --------------------------------------------------

# The kinds of data (special category, criminal offence) for which the request claims a
# condition the purpose allows, and those for which such a condition is also met: it
# needs no reason when consent is the basis, or the request gives that reason.
claimed_kinds contains catalogue.conditions[c].kind if {
	some c in object.get(req, "conditions", [])
	c in purpose.conditions
}

met_kinds contains catalogue.conditions[c].kind if {
	some c in object.get(req, "conditions", [])
	c in purpose.conditions
	reason_not_needed(c)
}

reason_not_needed(c) if not catalogue.conditions[c].requires_reason_without_consent

reason_not_needed(_) if req.legal_basis == "consent"

reason_not_needed(_) if catalogue.consent_not_sought_reasons[req.consent_not_sought_reason]

sensitivity_code("special_category") := "special_category_no_condition"

sensitivity_code("criminal_offence") := "offence_data_no_condition"

# A field of each sensitivity may go ("ok"), or the code saying why not.
verdicts := {
	"ordinary": "ok",
	"special_category": sensitivity_verdict("special_category"),
	"criminal_offence": sensitivity_verdict("criminal_offence"),
}

sensitivity_verdict(kind) := "ok" if {
	kind in met_kinds
} else := "consent_not_sought_reason_missing" if {
	kind in claimed_kinds
} else := sensitivity_code(kind)

# --- fields -----------------------------------------------------------------------------

# The verdict on a field before the person's own restrictions: the same for every person
# at one agency, so it is worked out once per agency.
field_code(f, offered, allow, agreed, facts) := "field_not_offered" if {
	not offered[f]
} else := "not_in_purpose" if {
	not f in allow
} else := "break_glass_reduced_set" if {
	facts.break_glass
	not f in facts.break_glass_fields
} else := "not_in_agreement" if {
	not facts.break_glass
	not f in agreed
} else := facts.verdicts[offered[f]] if {
	facts.verdicts[offered[f]] != "ok"
} else := "released"

agency_codes(provider, requested, agreed, tier, facts) := {f: "known_to_service_only" | some f in requested} if {
	tier == "known_to_service"
} else := {f: code |
	offered := {fd.name: fd.sensitivity | some fd in provider.fields}
	allow := object.get(facts.field_allow, provider.agency_type, [])
	some f in requested
	code := field_code(f, offered, allow, agreed, facts)
} if {
	tier == "full"
}

released_fields(requested, codes) := [f | some f in requested; codes[f] == "released"]

withheld_fields(requested, codes, texts) := [withheld |
	some f in requested
	c := codes[f]
	c != "released"
	withheld := {"field": f, "code": c, "text": object.get(texts, c, c)}
]

# --- one agency -------------------------------------------------------------------------

# The agency's entry in the answer: a template for each (consent outcome, restricted
# fields) pair that occurs, and each person's pair, which names their template.
agency_answer(provider, facts) := {
	"agency_id": provider.agency_id,
	"templates": [entry |
		some v in {[p[1], p[2]] | some p in persons}
		entry := {"outcome": v[0], "restricted": v[1], "exchange": template(ctx, v[0], v[1], facts)}
	],
	"persons": persons,
} if {
	ctx := agency_context(provider, facts)
	persons := agency_persons(provider, ctx, facts)
}

# Everything about one provider that does not depend on the person, including the
# exchanges for everybody who has restricted none of the fields (by consent outcome).
agency_context(provider, facts) := {
	"agency_id": provider.agency_id,
	"requested": requested,
	"agreement": terms[0],
	"denials": denials,
	"grants": grants,
	"tier": tier,
	"allowed": facts.allowed[tier],
	"codes": codes,
	"released": released,
	"unrestricted": granted_exchanges(tier, grants, terms[0], released, withheld, facts),
} if {
	requested := sort({f | some f in provider.requested_fields})
	terms := agreement_terms(provider, facts)
	denials := {"agency_type_not_in_purpose" |
		not facts.field_allow[provider.agency_type]
	} | {code | code := terms[2]; code != null}

	# The consent outcomes that let an exchange with this agency go ahead: none when the
	# agency itself is refused.
	grants := {outcome | some outcome in ["permit", "override"]; denials == set()}
	tier := object.get(facts.tiers, provider.agency_type, "full")
	codes := agency_codes(provider, requested, terms[1], tier, facts)
	released := released_fields(requested, codes)
	withheld := withheld_fields(requested, codes, facts.reason_texts)
}

# [ref, consent outcome, restricted] for each person, in the order asked: the outcome of
# their consent state on this request (consent_outcome), and, when that outcome lets the
# exchange go ahead, the fields they have restricted that would otherwise be released
# (in the order requested).
#
# A person's consent state is that of least rank among their records for this purpose
# with this agency (see consent_precedence), 4 (not sought) when none speaks. A consent
# given but past its expiry counts as expired, one rank weaker; that is only looked at
# when it changes the outcome (on a statutory gateway both permit), as it costs a time
# parse per record. Each case is one comprehension over locals: a function call per
# person or per record would cost more than the work itself.
agency_persons(provider, ctx, facts) := [[person.ref, outcome, restricted] |
	some person in provider.persons
	ranks := {rank |
		some r in person.consents
		r.purpose == purpose_id
		r.agency_id == agency_id
		rank := rank_of[r.state]
	}
	outcome := outcome_of[min(ranks | {4})]
	restricted := [f | some f in released; outcome in grants; f in person.restricted_fields]
] if {
	facts.consent_outcome.given == facts.consent_outcome.expired
	purpose_id := facts.purpose
	agency_id := provider.agency_id
	rank_of := consent_rank
	outcome_of := [o | some state in consent_precedence; o := facts.consent_outcome[state]]
	grants := ctx.grants
	released := ctx.released
} else := [[person.ref, outcome, restricted] |
	some person in provider.persons
	ranks := {rank |
		some r in person.consents
		r.purpose == purpose_id
		r.agency_id == agency_id
		rank := rank_of[r.state] + lapsed(r, now)
	}
	outcome := outcome_of[min(ranks | {4})]
	restricted := [f | some f in released; outcome in grants; f in person.restricted_fields]
] if {
	now := facts.now_ns
	purpose_id := facts.purpose
	agency_id := provider.agency_id
	rank_of := consent_rank
	outcome_of := [o | some state in consent_precedence; o := facts.consent_outcome[state]]
	grants := ctx.grants
	released := ctx.released
}

# 1 when a consent was given but has passed its expiry (it then counts as expired), else 0.
lapsed(r, now) := 1 if {
	r.state == "given"
	r.expires_at != null
	time.parse_rfc3339_ns(r.expires_at) <= now
} else := 0

# --- one exchange -----------------------------------------------------------------------

# The code every withheld field carries when the whole exchange is refused.
pair_priority := [
	"agency_type_not_in_purpose",
	"agreement_suspended",
	"agreement_not_yet_in_force",
	"agreement_expired",
	"no_active_agreement",
	"consent_withdrawn",
	"consent_refused",
	"consent_expired",
	"consent_not_sought",
	"consent_withdrawn_no_override",
	"consent_refused_no_override",
]

# The exchange with an agency for everybody whose consent has this outcome and who has
# restricted these of the fields it would otherwise release.
template(ctx, outcome, restricted, facts) := exchange if {
	restricted == []
	outcome in ctx.grants
	exchange := ctx.unrestricted[outcome]
} else := exchange if {
	outcome in ctx.grants
	codes := object.union(ctx.codes, {f: "restricted_by_person" | some f in restricted})
	exchanges := granted_exchanges(
		ctx.tier, {outcome}, ctx.agreement,
		released_fields(ctx.requested, codes),
		withheld_fields(ctx.requested, codes, facts.reason_texts),
		facts,
	)
	exchange := exchanges[outcome]
} else := refused(ctx, sort(denials), lead, facts) if {
	denials := ctx.denials | ({outcome} - {"permit", "override"})
	lead := [c | some c in pair_priority; c in denials][0]
}

# The exchange, for each of these consent outcomes that let it go ahead, when these fields
# are released and these withheld: allowed with the reasons and obligations of the tier
# and outcome; refused after all when no field may go, unless the agency may only say
# whether it knows the person.
granted_exchanges(tier, outcomes, agreement, permitted, withheld, facts) := {outcome: exchange |
	some outcome in outcomes
	allowed := by_outcome[outcome]
	exchange := {
		"allow": true,
		"tier": tier,
		"permitted_fields": permitted,
		"withheld": withheld,
		"obligations": allowed.obligations,
		"reasons": allowed.reasons,
		"agreement": agreement,
		"retention_days": facts.retention_days,
	}
} if {
	some_released(tier, permitted)

	# Not facts.allowed[tier][outcome]: regorus is slow on two variable keys in a row.
	by_outcome := facts.allowed[tier]
} else := {outcome: exchange | some outcome in outcomes; exchange := nothing_released} if {
	nothing_released := {
		"allow": false,
		"tier": tier,
		"permitted_fields": permitted,
		"withheld": withheld,
		"obligations": [],
		"reasons": facts.no_fields_permitted,
		"agreement": agreement,
		"retention_days": facts.retention_days,
	}
}

some_released(tier, permitted) if {
	tier == "known_to_service"
} else if {
	permitted != []
}

refused(ctx, codes, lead, facts) := {
	"allow": false,
	"tier": "none",
	"permitted_fields": [],
	"withheld": [withheld | some f in ctx.requested; withheld := {"field": f, "code": lead, "text": lead_text}],
	"obligations": [],
	"reasons": [r | some c in codes; r := {"code": c, "text": object.get(facts.reason_texts, c, c)}],
	"agreement": ctx.agreement,
	"retention_days": facts.retention_days,
} if {
	lead_text := object.get(facts.reason_texts, lead, lead)
}

request_refused_agency(provider) := {
	"agency_id": provider.agency_id,
	"templates": [{
		"outcome": "request_refused",
		"restricted": [],
		"exchange": refused(ctx, ["request_refused"], "request_refused", facts),
	}],
	"persons": [[person.ref, "request_refused", []] | some person in provider.persons],
} if {
	ctx := {"requested": sort({f | some f in provider.requested_fields}), "agreement": null}
	facts := {"reason_texts": reason_texts, "retention_days": retention_days}
}

# The reasons and obligations of an allowed exchange, by tier and consent outcome: four
# variants at most, built once a request from the few reasons and obligations they are
# made of.
allowed := {
	"full": {
		"permit": {"reasons": [basis, in_force], "obligations": base_obligations},
		"override": {"reasons": [basis, in_force, overridden], "obligations": override_obligations},
	},
	"known_to_service": {
		"permit": {"reasons": [basis, in_force, known_only], "obligations": base_obligations},
		"override": {"reasons": [basis, in_force, overridden, known_only], "obligations": override_obligations},
	},
} if {
	basis := reason(basis_reason)
	in_force := reason(in_force_reason)
	overridden := reason("consent_override_recorded")
	known_only := reason("known_to_service_only")
	base_obligations := base_allow_obligations
	override_obligations := array.concat(base_allow_obligations, [obligation("record_consent_override")])
}

basis_reason := "basis_consent_given" if req.legal_basis == "consent"

basis_reason := "basis_statutory_gateway" if req.legal_basis == "public_task"

in_force_reason := "break_glass_in_force" if break_glass else := "agreement_in_force"

base_allow_obligations := break_glass_obligations if break_glass else := []
