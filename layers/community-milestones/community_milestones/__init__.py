"""Community milestones: Returning.AI activity turned into milestone records."""
