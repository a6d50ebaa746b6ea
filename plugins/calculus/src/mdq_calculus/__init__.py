"""mdq-calculus: turn measured marginal values into a reversible candidate package (`mdq propose`)."""
