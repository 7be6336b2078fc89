# Local policy of the GP practice: what it will not release, whatever the broker decided.
# Input and decision shapes: connectors/local_policy.py and docs/agency-guide.md.
package junction.local.health

import rego.v1

# Health shares for safeguarding children, not for youth justice assessments.
accepted_purposes := {
	"early_help_assessment",
	"child_in_need_assessment",
	"child_protection_enquiry",
}

request contains refusal if {
	not input.purpose in accepted_purposes
	refusal := {
		"scope": "purpose",
		"code": "purpose-not-accepted",
		"reason": sprintf("the practice does not share for %s", [input.purpose]),
	}
}

# A patient registered at a refuge address is never located through the practice.
persons contains refusal if {
	some person in input.persons
	"refuge" in person.flags
	refusal := {
		"ref": person.ref,
		"code": "refuge-protected",
		"reason": "protected under the practice's domestic abuse procedure",
	}
}

# Substance misuse treatment is shared only for a child protection enquiry.
fields contains withheld if {
	input.operation == "fetch"
	input.purpose != "child_protection_enquiry"
	not input.break_glass
	some person in input.persons
	some field in person.fields
	field == "health.substance_misuse_service_24m"
	withheld := {
		"ref": person.ref,
		"field": field,
		"code": "purpose-too-narrow",
		"reason": "treatment records are shared for s47 enquiries only",
	}
}

# Arrays, not sets: every engine returns them the same way.
decision := {
	"request": [r | some r in request],
	"persons": [p | some p in persons],
	"fields": [f | some f in fields],
}
