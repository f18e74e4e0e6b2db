"""The local stack: moto in server mode, a Returning.AI stand-in and a runner for the main job."""
