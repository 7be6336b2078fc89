# Local policy of children's social care: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.social_care

import rego.v1

accepted_purposes := {
	"early_help_assessment",
	"child_in_need_assessment",
	"child_protection_enquiry",
	"youth_offending_assessment",
}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("children's social care does not share for %s", [input.purpose]),
	}
}

# Adoption records are sealed by law (Adoption and Children Act 2002, s.79).
persons contains refusal if {
	some person in input.persons
	"adoption_sealed" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "sealed-record",
		"reason": "the record is sealed; apply to the court for disclosure",
	}
}

# Child protection plans go only to enquiries and assessments under the Children Act.
fields contains withheld if {
	input.operation == "fetch"
	input.purpose == "early_help_assessment"
	some person in input.persons
	some field in person.fields
	field == "social_care.child_protection_plan"
	withheld := {
		"ref": person.ref,
		"field": field,
		"code": "purpose-too-narrow",
		"reason": "plans are shared for s17 and s47 work only",
	}
}

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
