//! The customer-journey domain: journeys, stages, steps, items, links, comments, personas.
//! Every method takes the caller's workspace id and never reads outside it.
