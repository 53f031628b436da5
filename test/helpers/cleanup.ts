import { dropTestDatabases } from './database-target';
import { killServers } from './server-process';

afterAll(async () => {
  await killServers();
  await dropTestDatabases();
});
