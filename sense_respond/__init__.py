"""sense-respond: sense unhappy influential customers in social feeds, respond through Redis."""
