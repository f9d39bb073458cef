-- Run once by the postgres image on first start (docker-compose.yml): the database
-- of the agent-teams controls store (daily budgets, breakers, rate limits). The
-- worker creates its tables on first use.
CREATE DATABASE agent_teams;
